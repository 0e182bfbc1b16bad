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

/* ---- room.c: lifecycle, the timer, the epilogue --------------------------- */
/* The epilogue of every export: re-arm the in-memory timer from what the
** call left due (Module.xNextDue). Returns rc. room may be NULL. */
int roomDone(Room *room, int rc);
/* The open step that reads the commit counter and records the room's name. */
int roomOpenState(Room *room, const cJSON *config);
/* _openStats {} (testHooks): {"steps":[{name, sqlStatements, rowsRead,
** rowsWritten}]}, what each module's open cost, then "(end)", the schema
** hash's record. */
int roomOpenStats(Call *call, cJSON **ppResult);

/* ---- conn.c: WebSocket connections -------------------------------------- */
Conn *connFind(Room *room, uint32_t id);
void connFreeAll(Room *room);
/* A fresh token for conn (borrowed): the host verifies it
** (NT_ASYNC_VERIFY_TOKEN) and reply, moved to the pending request, gets
** {userId, role, expiresAt} once the connection's identity is swapped, or
** the refusal (a token of another user: PERMISSION_DENIED, and the
** connection keeps its identity). NT_PENDING, or an error with err set. */
int connReauth(Room *room, Conn *conn, const char *token, Reply *reply, char *err, size_t errLen);
/* The token module's hooks (modules.c): its part of the attachment, and the
** schedule's task that warns a client whose token is about to expire and
** closes its socket once it has. */
void connTokenAttach(Room *room, Conn *conn, cJSON *attachment);  /* "tokenExp", "tokenWarnAt" */
int connTokenRestore(Room *room, Conn *conn, const cJSON *attachment);
int connExpiryTask(Room *room, const cJSON *payload, char *err, size_t errLen);   /* task conn.expiry */

/* ---- admin.c: the dashboard's questions about the room (ADMIN) ---------- */
int adminConnections(Call *call, cJSON **ppResult);   /* getConnections {} */
int adminListTables(Call *call, cJSON **ppResult);    /* listTables {} */
int adminBrowseTable(Call *call, cJSON **ppResult);   /* browseTable {table, limit?, offset?} */
int adminRateLimits(Call *call, cJSON **ppResult);    /* getRateLimits {} */
int adminListSchedule(Call *call, cJSON **ppResult);  /* listSchedule {} */
/* The module's hooks: each socket's connectedAt, in its attachment. */
void adminConnAttach(Room *room, Conn *conn, cJSON *attachment);
int adminConnRestore(Room *room, Conn *conn, const cJSON *attachment);

/* ---- method.c + methods.def: the method table ---------------------------- */
int methodLookup(Room *room, const char *name, Method *out);
/* The single door every RPC goes through: look up, authorize, admit, run. */
int methodCall(Call *call, const char *name, cJSON **ppResult);
/* A built-in method visible in this room has this name (Room.xIsMethod). */
int methodIsBuiltin(Room *room, const char *name);
/* Flat costs of the frames that are not RPCs, from methods.def (ACTION
** lines): counted in the connection's windows only. */
extern const double rateCostSubscribe, rateCostUnsubscribe, rateCostAck, rateCostAuth;

/* ---- rpc.c: frames ------------------------------------------------------ */
/* The one parser for JSON entering the core from outside (frames, HTTP
** bodies, identities, attachments): exactly len bytes of UTF-8, no raw
** control character inside a string or between tokens (but tab, LF, CR as
** blanks), nothing but blanks after the value. NT_OK with *ppDoc (caller
** deletes); NT_INVALID_ARGUMENT with *ppDoc set too when the text is valid
** but a string holds the escape \u0000 (the caller refuses it: cJSON's
** strings end at a NUL, so that string would be cut); NT_BAD_REQUEST with
** *ppDoc NULL otherwise. On NT_OK every string in *ppDoc is exact: its
** strlen is its length. */
int rpcJsonParse(const uint8_t *data, uint32_t len, cJSON **ppDoc);
/* Parse the trusted identity JSON the host sends ({userId, role?, clientId?},
** or a connection's attachment, which holds them too) with rpcJsonParse, and
** check each field: a string within its byte bounds (userId 1 to
** NT_MAX_USER_ID_LEN, role up to NT_MAX_ROLE_LEN, clientId up to
** NT_MAX_ID_LEN) and free of control characters. NT_OK with *ppDoc (caller
** deletes) and caller's strings borrowed from it; NT_UNAUTHENTICATED with
** *ppDoc NULL for anything else, an escaped NUL included. */
int identityParse(const uint8_t *data, uint32_t len, cJSON **ppDoc, Caller *caller);

#endif /* NT_ROOM_H */
