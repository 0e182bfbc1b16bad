/*
** env.js — which environment this Worker runs in, and what that allows.
**
** NT_ENV names the environment: "development" (the default, and what
** `wrangler dev` runs), "staging" or "production" (wrangler.toml's
** [env.staging] and [env.production] set it). /health reports it.
**
** Some features exist only for development and must never run in
** production: the test hooks (NT_TEST_HOOKS), the development login, and
** webhook deliveries to loopback addresses. Each asks isProduction() here,
** so the rule lives in one place. It fails closed: a value of NT_ENV that is
** not one of the known names (a typo such as "prod") counts as production
** for these guards, so a mistyped deployment never opens a development door.
*/

export const ENVIRONMENTS = ["development", "staging", "production"];
const DEFAULT_ENV = "development";

/* The environment's name as configured ("development" when unset). */
export function envName(env) {
  const name = env?.NT_ENV;
  return typeof name === "string" && name !== "" ? name : DEFAULT_ENV;
}

/* True in production, and for any NT_ENV that is not a known name. */
export function isProduction(env) {
  const name = envName(env);
  return name === "production" || !ENVIRONMENTS.includes(name);
}

/* A development-only feature the configuration asks for (flag === "1"),
** unless this is production. Logs once per isolate when production refuses
** a feature that was asked for, so the refusal is visible. */
const refused = new Set();
export function devFeature(env, variable) {
  if (env?.[variable] !== "1") return false;
  if (!isProduction(env)) return true;
  if (!refused.has(variable)) {
    refused.add(variable);
    console.warn(`${variable}=1 is ignored: NT_ENV is ${JSON.stringify(envName(env))}, ` +
      "and development-only features never run in production");
  }
  return false;
}

/* The test hooks (test-only methods, the D1 failure switch). */
export function testHooksEnabled(env) {
  return devFeature(env, "NT_TEST_HOOKS");
}
