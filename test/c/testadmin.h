/*
** testadmin.h — fixtures for the tests of the dashboard's methods
** (test_directory.c, test_metrics.c, test_introspect.c): call a method over
** HTTP as someone and read its answer, and open a room with extra config.
*/
#ifndef NT_TESTADMIN_H
#define NT_TESTADMIN_H

#include "testroom.h"

/* Call method with payloadJson over HTTP as identityJson. The result (caller
** deletes) when it succeeded, else NULL with the error code in code (which
** may be NULL); a call still waiting for the host is NULL with code "". */
static inline cJSON *testHttpCall(const char *identityJson, const char *method,
                                  const char *payloadJson, char *code, size_t n){
  static uint32_t req = 1000;
  char body[4096];
  snprintf(body, sizeof body, "{\"method\":\"%s\",\"payload\":%s}", method, payloadJson);
  uint32_t id = ++req;
  fakehostHttpRpc(id, identityJson, body);
  if( code ) code[0] = 0;
  const FakeResponse *r = fakehostResponse(id);
  if( r==NULL ) return NULL;
  cJSON *doc = cJSON_Parse(r->body);
  cJSON *result = cJSON_DetachItemFromObjectCaseSensitive(doc, "result");
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "error"), "code");
  if( code && cJSON_IsString(c) ) snprintf(code, n, "%s", c->valuestring);
  cJSON_Delete(doc);
  return result;
}

/* The same as the admin. */
static inline cJSON *testAdminCall(const char *method, const char *payloadJson){
  return testHttpCall(ADMIN, method, payloadJson, NULL, 0);
}

/* The error code of method called as identityJson ("" when it succeeded). */
static inline const char *testCallCode(const char *identityJson, const char *method,
                                       const char *payloadJson, char *code, size_t n){
  cJSON_Delete(testHttpCall(identityJson, method, payloadJson, code, n));
  return code;
}

/* The example app with one more top-level config entry (extraJson, an
** object whose members are added), under the given room name. */
static inline Room *testAppOpenWith(const char *roomName, const char *extraJson){
  const char *const migrations[] = { testTasksMigration, NULL };
  return testRoomOpenWith(roomName, migrations, testTasksFunctions, 1, extraJson);
}

/* The item at a dotted path of doc ("rooms.0.room": numbers index
** arrays), or NULL. */
static inline const cJSON *testAt(const cJSON *doc, const char *path){
  const cJSON *v = doc;
  char key[64];
  for(const char *p = path; v && *p; ){
    size_t k = strcspn(p, ".");
    snprintf(key, sizeof key, "%.*s", (int)k, p);
    v = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, atoi(key)) : cJSON_GetObjectItemCaseSensitive(v, key);
    p += k + (p[k]=='.');
  }
  return v;
}
static inline double testNumber(const cJSON *doc, const char *path){   /* -1 when not a number */
  const cJSON *v = testAt(doc, path);
  return cJSON_IsNumber(v) ? v->valuedouble : -1;
}
static inline const char *testString(const cJSON *doc, const char *path){  /* "" when not a string */
  const cJSON *v = testAt(doc, path);
  return cJSON_IsString(v) ? v->valuestring : "";
}

#endif /* NT_TESTADMIN_H */
