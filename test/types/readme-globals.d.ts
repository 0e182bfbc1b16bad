/*
** readme-globals.d.ts — the app-side helpers the README examples call
** (types.test.js compiles every ts/tsx block of README.md and
** client/README.md with these declared).
*/
declare function getFreshJwt(): Promise<string>;
declare function showSignIn(): void;
declare function render(items: unknown): void;
declare function chart(rows: unknown): void;
declare function showAvatars(people: unknown): void;
declare function drawCursors(cursors: unknown): void;
declare const indicator: HTMLElement;
