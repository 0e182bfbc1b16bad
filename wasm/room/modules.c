/*
** modules.c — the room's modules and the events each one hears.
**
** This table is the one place a module is registered. Its row says which of
** the room's events reach it (Module in host/host.h): the commits of the one
** write path, the in-memory timer, the end of every export, a connection's
** restore, attachment and close, the room going idle, and the tasks of the
** durable schedule it runs. The layers below fire the hooks through
** room->modules; nothing else calls a module to tell it about an event.
** Rows are in open order; the room frees them in reverse.
*/
#include <string.h>
#include "room.h"

/* The plan shape live.c and sync.c take, from what a write touched. */
static GuardPlan modulesPlan(const Touched *t){
  GuardPlan plan;
  memset(&plan, 0, sizeof plan);
  plan.writes = (char**)t->tables;
  plan.nWrites = t->nTables;
  plan.deletes = t->deletes;
  return plan;
}
static void liveCommitted(Room *room, const Touched *t){
  GuardPlan plan = modulesPlan(t);
  liveOnCommit(room, &plan);
}
static void syncCommitted(Room *room, const Touched *t){
  GuardPlan plan = modulesPlan(t);
  syncOnCommit(room, &plan);
}

static const ModuleTask schedTasks[] = { { "room.maintenance", schedMaintenance }, { NULL, NULL } };
static const ModuleTask cronTasks[]  = { { "cron.run", cronJobRun }, { NULL, NULL } };
static const ModuleTask syncTasks[]  = { { "sync.retry", syncRetryTask }, { NULL, NULL } };
static const ModuleTask webhookTasks[] = { { "webhook.outbox", webhookTask }, { NULL, NULL } };
static const ModuleTask embedTasks[] = { { "embed.outbox", embedTask }, { NULL, NULL } };

const Module roomModules[] = {
  { .name = "live",     .xOnCommit = liveCommitted },
  { .name = "sync",     .xOnCommit = syncCommitted, .tasks = syncTasks },
  { .name = "cronjobs", .tasks = cronTasks },
  { .name = "sched",    .tasks = schedTasks },
  { .name = "webhook",  .xOpen = webhookOpen, .xFree = webhookFree, .xOnCommit = webhookOnCommit,
    .xNextDue = webhookNextDue, .xOnTimer = webhookOnTimer, .tasks = webhookTasks },
  { .name = "embed",    .xOpen = embedOpen, .xFree = embedFree, .xOnCommit = embedOnCommit,
    .xNextDue = embedNextDue, .xOnTimer = embedOnTimer, .tasks = embedTasks },
};
const int roomModuleCount = (int)(sizeof roomModules / sizeof roomModules[0]);
