/*
** config.c — reading the room's configuration.
**
** The host hands nt_room_new one JSON object (nt.h lists its keys); each
** module reads its own keys from it when the room opens (Module.xOpen).
** Numbers that are absent, of another type or negative fall back to the
** module's default, so a missing key never stops a room.
*/
#include "host.h"

double ntConfigNumber(const cJSON *config, const char *key, double fallback){
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(config, key);
  return cJSON_IsNumber(v) && v->valuedouble >= 0 ? v->valuedouble : fallback;
}
