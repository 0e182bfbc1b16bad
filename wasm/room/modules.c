/*
** modules.c — the room's modules and the events each one hears.
**
** This table is the one place a module is registered. Its row names the
** module's system tables and the hooks through which it hears the room's
** events (Module, host/host.h): the open and the free of the room, the
** commits of the one write path, the in-memory timer, a connection's
** restore, attachment and close, the room going idle, getStats, the
** tasks of the durable schedule it runs, and the schedule's hourly
** maintenance run. The layers below fire the hooks
** through room->modules; nothing else calls a module to tell it about an
** event.
**
** Order matters in three ways. Rows open in this order: the analysis
** database first (its row only frees it: it is built on first need), then the migrations (which also lay down every row's
** schema), the commit counter, row-level security, and the outbox triggers
** before the named functions are analysed, so each function's plan lists the
** outbox among what it writes. Commits and timer ticks reach rows in
** this order: live queries hear a commit before replication does, and a
** tick flushes live queries before debounced writes commit. Rows are freed
** in the reverse order.
*/
#include "room.h"

static const ReplicaReader syncReplica = { syncReplicaReady, syncReplicaQuery, syncReplicaRaw };

static const ModuleTask schedTasks[] = { { "room.maintenance", schedMaintenance }, { NULL, NULL } };
static const ModuleTask cronTasks[]  = { { "cron.run", cronJobRun }, { NULL, NULL } };
static const ModuleTask syncTasks[]  = { { "sync.retry", syncRetryTask }, { NULL, NULL } };
static const ModuleTask auditTasks[] = { { "audit.trim", auditTrimTask }, { NULL, NULL } };
static const ModuleTask filesTasks[] = { { "files.sweep", filesSweepTask }, { NULL, NULL } };
static const ModuleTask webhookTasks[] = { { "webhook.outbox", webhookTask }, { NULL, NULL } };
static const ModuleTask embedTasks[] = { { "embed.outbox", embedTask }, { NULL, NULL } };
static const ModuleTask tokenTasks[] = { { "conn.expiry", connExpiryTask }, { NULL, NULL } };

const Module roomModules[] = {
  { .name = "cost",      .xFree = costClose },
  { .name = "schema",    .xFree = schemaClose },  /* built on first need (schemaEnsure) */
  { .name = "metrics",   .xOpen = metricsOpen, .xFree = metricsFree, .xOnCommit = metricsOnCommit,
    .xDone = metricsDone },
  { .name = "live",      .xOpen = liveOpen, .xFree = liveFreeAll, .xOnCommit = liveOnCommit,
    .xNextDue = liveNextDue, .xOnTimer = liveOnTimer, .xConnRestore = liveRestore,
    .xConnAttach = liveAttach, .xConnGone = liveConnGone, .xStats = liveStats },
  { .name = "migrate",   .xOpen = migrateOpen },
  { .name = "room",      .xOpen = roomOpenState },
  { .name = "idem",      .schema = idemSchema, .lazy = 1 },
  { .name = "rate",      .schema = rateSchema, .lazy = 1, .xSchemaWanted = rateSchemaWanted,
    .xFree = rateFree, .xWriteEnd = rateWriteEnd, .xOnCommit = rateOnCommit,
    .xNextDue = rateNextDue, .xOnTimer = rateOnTimer, .xIdle = rateOnIdle },
  { .name = "rls",       .xOpen = rlsOpen, .xFree = rlsFree },
  { .name = "debounce",  .schema = debounceSchema, .lazy = 1, .xFree = debounceFreeAll,
    .xNextDue = debounceNextDue, .xOnTimer = debounceOnTimer, .xIdle = debounceOnIdle },
  { .name = "presence",  .xOpen = presenceOpen, .xFree = presenceFree,
    .xNextDue = presenceNextDue, .xOnTimer = presenceOnTimer, .xConnRestore = presenceRestore,
    .xConnAttach = presenceAttach, .xConnGone = presenceConnGone },
  { .name = "directory", .xOpen = directoryOpen, .xFree = directoryFree,
    .xOnCommit = directoryOnCommit, .xNextDue = directoryNextDue, .xOnTimer = directoryOnTimer,
    .xConnAttach = directoryConnAttach, .xConnGone = directoryConnGone, .xDone = directoryDone },
  { .name = "admin",     .xConnRestore = adminConnRestore, .xConnAttach = adminConnAttach },
  { .name = "sync",      .schema = syncSchema, .lazy = 1, .xSchemaWanted = syncSchemaWanted,
    .xOpen = syncOpen, .xFree = syncFree, .xOnCommit = syncOnCommit,
    .xNextDue = syncNextDue, .xOnTimer = syncOnTimer, .tasks = syncTasks, .replica = &syncReplica },
  { .name = "webhook",   .schema = webhookSchema, .lazy = 1, .xOpen = webhookOpen, .xFree = webhookFree,
    .xOnCommit = webhookOnCommit, .xNextDue = webhookNextDue, .xOnTimer = webhookOnTimer,
    .tasks = webhookTasks },
  { .name = "embed",     .schema = embedSchema, .lazy = 1, .xSchemaWanted = embedSchemaWanted,
    .xOpen = embedOpen, .xFree = embedFree, .xWriteBegin = embedWriteBegin,
    .xMirrorBuilt = embedMirrorBuilt,
    .xMigrateRows = embedMigrateRows,
    .xOnCommit = embedOnCommit, .xNextDue = embedNextDue, .xOnTimer = embedOnTimer,
    .tasks = embedTasks },
  { .name = "functions", .xOpen = fnOpen, .xFree = fnFreeAll },
  { .name = "cronjobs",  .schema = cronJobSchema, .lazy = 1, .tasks = cronTasks },
  { .name = "audit",     .schema = auditSchema, .xOpen = auditOpen, .xFree = auditFree,
    .xWriteEnd = auditWriteEnd, .xOnCommit = auditOnCommit, .xCallEnd = auditCallEnd,
    .tasks = auditTasks, .xMaintain = auditMaintain },
  { .name = "analytics", .xOpen = analyticsOpen, .xFree = analyticsFree,
    .xOnCommit = analyticsOnCommit, .xCallEnd = analyticsCallEnd, .xDone = analyticsDone },
  { .name = "files",     .schema = filesSchema, .lazy = 1, .xOpen = filesOpen, .xFree = filesFree,
    .tasks = filesTasks },
  { .name = "sched",     .schema = schedSchema, .xOpen = schedOpen, .tasks = schedTasks },
  { .name = "tokens",    .xConnRestore = connTokenRestore, .xConnAttach = connTokenAttach,
    .tasks = tokenTasks },
};
const int roomModuleCount = (int)(sizeof roomModules / sizeof roomModules[0]);
