/*
** write.c — the one write path: every change to the room's data commits here.
**
** A write is one transaction: a first statement that bumps the commit
** counter in _room and names the caller whose rows the row-level-security
** triggers let it touch (or, for a migration, lets those triggers stand
** aside), what a module must have in place for the tables the write
** touches (Module.xWriteBegin: the embeddings' capture triggers, made by
** the first write that needs them), the body's statements, each module's own statements
** (Module.xWriteEnd: the audit log's record of the call that writes), and
** for a migration a last statement that puts the triggers back. The first
** statement goes when _room names that caller already (the last write's)
** and nothing in the body reads the version: the commit counter then moves
** with a statement the write makes anyway (the audit record, whose trigger
** keeps the chain's head on the same row) or, when none carried it, with
** one of its own at the end (storeWriteEnd). Statements
** that need no answer before the transaction goes on are queued
** (storeQueue) and cross to the host together: for a named function's
** mutation the begin, the body and the audit record are one host call at
** the end of the body, whose answer the function reads (storeQueueThen)
** still inside the transaction. When the
** host has committed it, room->version moves on by one and every module's
** on-commit hook hears what the write touched, how long it took and the
** rows it cost: live queries re-run what read those tables, replication
** sends the outbox, analytics counts the commit. Nothing above this layer bumps the version or calls a hook by
** hand, so the epilogue of a write cannot drift between callers.
*/
#include "host.h"

/* The transaction: begin, body, end. */
static int writeBody(Room *room, void *arg){
  const Write *w = arg;
  int rc;
  if( w->schema ){
    rc = storeRunFree(room, "UPDATE _room SET rls_bypass = 1, version = version + 1 WHERE id = 1",
                      NULL, w->err, w->errLen);
    storeVersionSet(room);
  }else{
    rc = storeWriteBegin(room, w->who, w->err, w->errLen);
  }
  for(int i = 0; rc==NT_OK && i < room->nModules; i++){
    if( room->modules[i].xWriteBegin ) rc = room->modules[i].xWriteBegin(room, w);
  }
  if( rc==NT_OK ) rc = w->xBody(room, w->arg);
  for(int i = 0; rc==NT_OK && i < room->nModules; i++){
    if( room->modules[i].xWriteEnd ) rc = room->modules[i].xWriteEnd(room, w);
  }
  if( rc==NT_OK ) rc = storeWriteEnd(room, w->err, w->errLen);
  if( rc==NT_OK && w->schema ){
    rc = storeRunFree(room, "UPDATE _room SET rls_bypass = 0 WHERE id = 1", NULL, w->err, w->errLen);
  }
  return rc;
}

int storeWrite(Room *room, const Write *w){
  double startMs = host_now_ms();
  double startRead = room->stats.rowsRead, startWritten = room->stats.rowsWritten;
  int rc = storeTxn(room, writeBody, (void*)w);
  if( rc ) return rc;                      /* NT_NOCHANGE included: rolled back */
  room->version++;
  if( room->trace ) room->trace->version = (double)room->version;
  room->lastWrite.endMs = host_now_ms();
  room->lastWrite.ms = room->lastWrite.endMs - startMs;
  room->lastWrite.rowsRead = room->stats.rowsRead - startRead;
  room->lastWrite.rowsWritten = room->stats.rowsWritten - startWritten;
  for(int i = 0; i < room->nModules; i++){
    if( room->modules[i].xOnCommit ) room->modules[i].xOnCommit(room, &w->touched);
  }
  return NT_OK;
}
