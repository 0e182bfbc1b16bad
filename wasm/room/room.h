/*
** room.h — the top layer: a room's lifecycle and wiring, its connections,
** the frame codec, and the method table.
**
** This is the umbrella header: it includes every layer below in order
** (lib.h, host.h, sql.h, call.h, feature.h), so the room's files and the
** native tests see the whole core through it. Nothing below room/ includes
** it.
*/
#ifndef NT_ROOM_H
#define NT_ROOM_H

#include "feature.h"

/* ---- modules.c: the room's modules, in open order ----------------------- */
extern const Module roomModules[];
extern const int roomModuleCount;

/* ---- conn.c: WebSocket connections -------------------------------------- */
Conn *connFind(Room *room, uint32_t id);
void connFreeAll(Room *room);

/* ---- method.c + methods.def: the method table ---------------------------- */
int methodLookup(Room *room, const char *name, Method *out);
/* The single door every RPC goes through: look up, authorize, admit, run. */
int methodCall(Call *call, const char *name, cJSON **ppResult);
/* A built-in method visible in this room has this name (Room.xIsMethod). */
int methodIsBuiltin(Room *room, const char *name);

/* ---- rpc.c: frames ------------------------------------------------------ */
int identityParse(cJSON *doc, Caller *caller);  /* strings borrowed from doc */

#endif /* NT_ROOM_H */
