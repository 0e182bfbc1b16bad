/*
** webhook.c — webhooks: every matching change of the room, POSTed, signed,
** retried, and kept in a delivery log.
**
** Capture. Every room table (a name not starting with "_") gets three
** triggers that, in the transaction of the write itself, insert one row
** into _webhook_deliveries per webhook whose event matches (<table>.added,
** .updated, .deleted, or "*"), with the row as JSON and the commit version.
** So a delivery exists if and only if its write committed, whatever path
** wrote (named functions, cron jobs, debounced flushes, migrations' data).
** Without a matching webhook the triggers insert nothing.
**
** Transport. The queue outbox (outq.c) sends each delivery's id to the
** webhook queue. The consumer (shim/queues.js) claims the deliveries from
** the room (_webhookClaim: the URL, the sealed secret, the body to sign),
** POSTs them, and reports each attempt (_webhookReport); the room answers
** with what to do next: done, retry after the backoff delay, or dead after
** the configured number of attempts. The dead-letter queue's consumer marks
** what the consumer could not handle at all (_webhookDead). The delivery
** log is the table itself; redeliverWebhook sends a delivery again.
**
** Registration checks the URL here (webhookCheckUrl: https only, no
** address of the room's own network), has the host resolve a host name
** (every address it resolves to must pass the same rules) and seal the
** secret (AES-GCM with the Worker's key), in one request: the room stores
** only the sealed form and answers the secret once, to the registration.
** The two tables are made with the room's first webhook, in the
** transaction of its row (Module.lazy, sql/modschema.c); until then the
** room reads nothing and answers as for no webhooks and no deliveries.
*/
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "feature.h"

#define WH_MAX_URL          2048     /* bytes of a webhook URL */
#define WH_MAX_HOOKS        100      /* webhooks per room */
#define WH_MIN_SECRET       16       /* a caller's own secret, bytes */
#define WH_MAX_SECRET       256
#define WH_MAX_ERROR        500      /* bytes of a reported error kept */
#define WH_LIST_DEFAULT     100      /* deliveries listed without a limit */
#define WH_LIST_MAX         1000
#define WH_QUEUE_MAX_DELAY  43200.0  /* seconds: the longest retry delay a queue takes */
#define WH_INLINE           65536    /* bytes of body a message carries; larger go by reference */

const char webhookSchema[] =
  "CREATE TABLE IF NOT EXISTS _webhooks ("
  " id TEXT PRIMARY KEY,"
  " url TEXT NOT NULL,"
  " event TEXT NOT NULL,"                     /* <table>.added|updated|deleted, or * */
  " secret TEXT NOT NULL,"                    /* sealed by the host (AES-GCM) */
  " created_by TEXT NOT NULL,"
  " created_at INTEGER NOT NULL);"
  "CREATE INDEX IF NOT EXISTS _webhooks_event ON _webhooks (event);"
  "CREATE TABLE IF NOT EXISTS _webhook_deliveries ("
  " id TEXT PRIMARY KEY,"                     /* stable: the X-Nanotype-Delivery header */
  " webhook_id TEXT NOT NULL,"
  " event TEXT NOT NULL,"
  " tbl TEXT NOT NULL,"
  " row TEXT,"                                /* the row as JSON (the old row for deletes) */
  " version INTEGER NOT NULL,"                /* the commit that made it */
  " at INTEGER NOT NULL,"                     /* captured, ms */
  " status TEXT NOT NULL DEFAULT 'pending',"  /* pending queued sending failed delivered dead */
  " attempts INTEGER NOT NULL DEFAULT 0,"
  " last_status INTEGER,"                     /* the receiver's last HTTP status */
  " last_error TEXT,"
  " delivered_at INTEGER,"
  " updated_at INTEGER NOT NULL);"
  "CREATE INDEX IF NOT EXISTS _webhook_deliveries_status ON _webhook_deliveries (status, updated_at);";

static cJSON *whMessage(Room *room, const cJSON *row);

/* Due rows: the delivery and its webhook (the URL and sealed secret, NULL
** once the webhook is gone), for whMessage. */
static const OutQueue webhookQueue = {
  .name = "webhook",
  .table = "_webhook_deliveries",
  .task = "webhook.outbox",
  .due = "SELECT d.id, d.event, d.tbl, d.row, d.version, d.at, w.url, w.secret, w.id, ?2"
         " FROM _webhook_deliveries d LEFT JOIN _webhooks w ON w.id = d.webhook_id"
         " WHERE d.status = 'pending' OR (d.status IN ('queued', 'sending', 'failed') AND d.updated_at < ?1)"
         " ORDER BY d.at, d.rowid LIMIT ?3",
  .xMessage = whMessage,
  .markSent = "UPDATE _webhook_deliveries SET updated_at = ?2,"
              " status = CASE status WHEN 'pending' THEN 'queued' ELSE status END"
              " WHERE id IN (SELECT value FROM json_each(?1))",
  .oldest = "SELECT min(updated_at) FROM _webhook_deliveries"
            " WHERE status IN ('pending', 'queued', 'sending', 'failed')",
};

typedef struct Webhooks {
  OutState out;                    /* the outbox towards the webhook queue */
  cJSON *allow;                    /* hosts exempt from the address rules: strings, owned */
  int nEvents;                     /* distinct events the webhooks listen to */
  int maxAttempts;                 /* then a delivery is dead */
  double retryBaseSec;             /* delay before the second attempt */
  double timeoutMs;                /* a claim younger than twice this is in flight */
} Webhooks;

/* The events a trigger kind captures, and where its row comes from. */
static const struct { const char *suffix, *on, *event, *ref; } whKinds[] = {
  { "_ins", "INSERT", "added",   "NEW" },
  { "_upd", "UPDATE", "updated", "NEW" },
  { "_del", "DELETE", "deleted", "OLD" },
};
#define WH_NOW "CAST(unixepoch('subsec') * 1000 AS INTEGER)"

/* ---- the URL rules ------------------------------------------------------ */

/* Address blocks no webhook may reach: loopback, private, link-local (the
** cloud metadata address 169.254.169.254 among them), shared, multicast,
** reserved. IPv4 as a 32-bit number and a prefix length. */
static const struct { uint32_t net; int bits; const char *why; } whBlocked4[] = {
  { 0x00000000u,  8, "a 'this network' address" },
  { 0x0a000000u,  8, "a private address" },
  { 0x64400000u, 10, "a shared (carrier-grade NAT) address" },
  { 0x7f000000u,  8, "a loopback address" },
  { 0xa9fe0000u, 16, "a link-local or metadata address" },
  { 0xac100000u, 12, "a private address" },
  { 0xc0000000u, 24, "an IETF protocol address" },
  { 0xc0a80000u, 16, "a private address" },
  { 0xc6120000u, 15, "a benchmarking address" },
  { 0xe0000000u,  4, "a multicast address" },
  { 0xf0000000u,  4, "a reserved address" },
};
/* IPv6 blocks, as the first bytes and a prefix length. Mapped and NAT64
** forms are checked again as the IPv4 address they carry. */
static const struct { uint8_t net[16]; int bits; const char *why; } whBlocked6[] = {
  { {0}, 128, "the unspecified address" },
  { {0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1}, 128, "a loopback address" },
  { {0xfc}, 7, "a unique local (private) address" },
  { {0xfe, 0x80}, 10, "a link-local address" },
  { {0xfe, 0xc0}, 10, "a site-local address" },
  { {0xff}, 8, "a multicast address" },
};
/* Host names that never name a public server. */
static const char *const whPrivateNames[] = { "localhost" };
static const char *const whPrivateSuffixes[] = { ".localhost", ".local", ".internal", ".home.arpa", ".lan" };

static int whPrefixMatch(const uint8_t *a, const uint8_t *net, int bits){
  for(int i = 0; i < bits; i++){
    int byte = i / 8, bit = 7 - i % 8;
    if( ((a[byte] >> bit) & 1) != ((net[byte] >> bit) & 1) ) return 0;
  }
  return 1;
}

static const char *whCheck4(uint32_t a){
  for(size_t i = 0; i < sizeof whBlocked4 / sizeof whBlocked4[0]; i++){
    uint32_t mask = whBlocked4[i].bits ? 0xffffffffu << (32 - whBlocked4[i].bits) : 0;
    if( (a & mask)==whBlocked4[i].net ) return whBlocked4[i].why;
  }
  return a==0xffffffffu ? "the broadcast address" : NULL;
}

/* One part of an IPv4 host as URL parsers read it: decimal, 0x hex, or
** octal with a leading 0. -1 if it is not a number. */
static double whNumber(const char *s, size_t n){
  int base = 10;
  if( n >= 2 && s[0]=='0' && (s[1]=='x' || s[1]=='X') ){ base = 16; s += 2; n -= 2; }
  else if( n >= 2 && s[0]=='0' ){ base = 8; s++; n--; }
  if( n==0 ) return base==16 ? 0 : -1;
  double v = 0;
  for(size_t i = 0; i < n; i++){
    int d = isdigit((unsigned char)s[i]) ? s[i] - '0'
          : isxdigit((unsigned char)s[i]) ? tolower((unsigned char)s[i]) - 'a' + 10 : 99;
    if( d >= base ) return -1;
    v = v * base + d;
    if( v > 4294967295.0 ) return 4294967296.0;
  }
  return v;
}

/* host as an IPv4 address in any form a URL parser accepts (1.2.3.4,
** 2130706433, 0x7f.1, 0177.0.0.1): 1 with *out, 0 when it is a name, -1
** when it looks numeric but is no address. */
static int whParse4(const char *host, uint32_t *out){
  double parts[4];
  int n = 0;
  const char *p = host;
  for(;;){
    const char *dot = strchr(p, '.');
    size_t len = dot ? (size_t)(dot - p) : strlen(p);
    if( len==0 && dot==NULL && n > 0 ) break;        /* one trailing dot */
    if( n==4 ) return -1;
    parts[n] = whNumber(p, len);
    if( parts[n] < 0 ) return dot==NULL && n==0 ? 0 : (dot ? 0 : -1);
    n++;
    if( dot==NULL ) break;
    p = dot + 1;
  }
  double v = 0;
  for(int i = 0; i < n - 1; i++){
    if( parts[i] > 255 ) return -1;
    v = v * 256 + parts[i];
  }
  double room = pow(256, 4 - (n - 1));
  if( parts[n-1] >= room ) return -1;
  v = v * room + parts[n-1];
  *out = (uint32_t)v;
  return 1;
}

/* An IPv6 literal (without brackets) into 16 bytes; 0 on success. */
static int whParse6(const char *s, uint8_t out[16]){
  uint16_t words[8];
  int n = 0, gap = -1;
  const char *p = s;
  memset(out, 0, 16);
  if( p[0]==':' ){ if( p[1]!=':' ) return -1; gap = 0; p += 2; }
  while( *p ){
    if( n==8 ) return -1;
    const char *q = p;
    unsigned v = 0;
    int digits = 0;
    while( isxdigit((unsigned char)*q) && digits < 5 ){
      v = v * 16 + (unsigned)(isdigit((unsigned char)*q) ? *q - '0' : tolower((unsigned char)*q) - 'a' + 10);
      q++; digits++;
    }
    if( *q=='.' ){                                   /* an IPv4 tail */
      uint32_t a;
      if( n > 6 || whParse4(p, &a)!=1 ) return -1;
      int dots = 0;
      for(const char *c = p; *c; c++) dots += *c=='.';
      if( dots!=3 ) return -1;
      words[n++] = (uint16_t)(a >> 16);
      words[n++] = (uint16_t)(a & 0xffff);
      break;
    }
    if( digits==0 || digits > 4 ) return -1;
    words[n++] = (uint16_t)v;
    if( *q==0 ) break;
    if( *q!=':' ) return -1;
    if( q[1]==':' ){
      if( gap >= 0 ) return -1;
      gap = n;
      q++;
      if( q[1]==0 ) break;
    }
    p = q + 1;
  }
  if( gap < 0 && n!=8 ) return -1;
  if( gap >= 0 && n==8 ) return -1;
  int tail = gap < 0 ? 0 : n - gap;
  for(int i = 0; i < (gap < 0 ? n : gap); i++){ out[2*i] = (uint8_t)(words[i] >> 8); out[2*i+1] = (uint8_t)words[i]; }
  for(int i = 0; i < tail; i++){
    int at = 8 - tail + i;
    out[2*at] = (uint8_t)(words[gap + i] >> 8);
    out[2*at+1] = (uint8_t)words[gap + i];
  }
  return 0;
}

static const char *whCheck6(const uint8_t a[16]){
  static const uint8_t mapped[12] = {0,0,0,0,0,0,0,0,0,0,0xff,0xff};
  static const uint8_t nat64[12] = {0,0x64,0xff,0x9b,0,0,0,0,0,0,0,0};
  static const uint8_t compat[12] = {0};
  if( memcmp(a, mapped, 12)==0 || memcmp(a, nat64, 12)==0
      || (memcmp(a, compat, 12)==0 && (a[12] | a[13])) ){
    uint32_t v4 = (uint32_t)a[12] << 24 | (uint32_t)a[13] << 16 | (uint32_t)a[14] << 8 | a[15];
    const char *why = whCheck4(v4);
    if( why ) return why;
  }
  for(size_t i = 0; i < sizeof whBlocked6 / sizeof whBlocked6[0]; i++){
    if( whPrefixMatch(a, whBlocked6[i].net, whBlocked6[i].bits) ) return whBlocked6[i].why;
  }
  return NULL;
}

static int whAllowed(const cJSON *allow, const char *host){
  const cJSON *h;
  cJSON_ArrayForEach(h, allow){
    if( cJSON_IsString(h) && strcmp(h->valuestring, host)==0 ) return 1;
  }
  return 0;
}

/* s begins with prefix, ASCII letters compared without case. */
static int whHasPrefix(const char *s, const char *prefix){
  for(; *prefix; s++, prefix++){
    if( tolower((unsigned char)*s)!=*prefix ) return 0;
  }
  return 1;
}

static int whErr(char *err, size_t errLen, const char *fmt, const char *arg){
  snprintf(err, errLen, fmt, arg);
  return NT_INVALID_ARGUMENT;
}

const char *webhookCheckAddress(const char *addr){
  if( strchr(addr, ':') ){
    uint8_t a[16];
    return whParse6(addr, a) ? "not an address" : whCheck6(a);
  }
  uint32_t a;
  return whParse4(addr, &a)!=1 ? "not an address" : whCheck4(a);
}

int webhookCheckUrl(const char *url, const cJSON *allow, char *pName, size_t nameLen, char *err, size_t errLen){
  size_t n = strlen(url);
  if( n==0 || n > WH_MAX_URL ) return whErr(err, errLen, "url: expected 1 to %s bytes", "2048");
  for(size_t i = 0; i < n; i++){
    unsigned char c = (unsigned char)url[i];
    if( c <= 0x20 || c==0x7f || c=='\\' ) return whErr(err, errLen, "url: %s", "no spaces, control characters or backslashes");
  }
  int https = whHasPrefix(url, "https://");
  int http = !https && whHasPrefix(url, "http://");
  if( !https && !http ) return whErr(err, errLen, "url: %s", "only https URLs are accepted");
  const char *auth = url + (https ? 8 : 7);
  size_t alen = strcspn(auth, "/?#");
  if( alen==0 ) return whErr(err, errLen, "url: %s", "no host");
  if( memchr(auth, '@', alen) ) return whErr(err, errLen, "url: %s", "credentials in the URL are not accepted");
  char host[256];
  const char *port = NULL;
  size_t hlen;
  int v6 = auth[0]=='[';
  if( v6 ){
    const char *close = memchr(auth, ']', alen);
    if( close==NULL ) return whErr(err, errLen, "url: %s", "unclosed [ in the host");
    hlen = (size_t)(close - auth - 1);
    if( hlen==0 || hlen >= sizeof host ) return whErr(err, errLen, "url: %s", "bad IPv6 host");
    memcpy(host, auth + 1, hlen);
    if( close + 1 < auth + alen ){
      if( close[1]!=':' ) return whErr(err, errLen, "url: %s", "bad host");
      port = close + 2;
    }
  }else{
    const char *colon = memchr(auth, ':', alen);
    hlen = colon ? (size_t)(colon - auth) : alen;
    if( hlen==0 || hlen >= sizeof host ) return whErr(err, errLen, "url: %s", "bad host");
    memcpy(host, auth, hlen);
    if( colon ) port = colon + 1;
  }
  host[hlen] = 0;
  if( port ){
    size_t plen = (size_t)(auth + alen - port);
    double p = plen ? whNumber(port, plen) : -1;
    if( plen > 5 || p < 1 || p > 65535 || port[0]=='0' ) return whErr(err, errLen, "url: %s", "bad port");
  }
  for(char *c = host; *c; c++) *c = (char)tolower((unsigned char)*c);
  if( hlen > 1 && host[hlen-1]=='.' && !v6 ) host[--hlen] = 0;
  if( pName && nameLen ) pName[0] = 0;
  if( whAllowed(allow, host) ) return NT_OK;          /* listed: http allowed too */
  if( http ) return whErr(err, errLen, "url: %s", "only https URLs are accepted (plain http only for hosts in NT_WEBHOOK_ALLOW_HOSTS)");
  const char *why = NULL;
  if( v6 ){
    uint8_t a[16];
    if( whParse6(host, a) ) return whErr(err, errLen, "url: %s", "bad IPv6 host");
    why = whCheck6(a);
  }else{
    uint32_t a;
    int kind = whParse4(host, &a);
    if( kind < 0 ) return whErr(err, errLen, "url: %s", "bad IPv4 host");
    if( kind==1 ){
      why = whCheck4(a);
    }else{
      for(size_t i = 0; !why && i < sizeof whPrivateNames / sizeof whPrivateNames[0]; i++){
        if( strcmp(host, whPrivateNames[i])==0 ) why = "a local host name";
      }
      for(size_t i = 0; !why && i < sizeof whPrivateSuffixes / sizeof whPrivateSuffixes[0]; i++){
        size_t sl = strlen(whPrivateSuffixes[i]);
        if( hlen > sl && strcmp(host + hlen - sl, whPrivateSuffixes[i])==0 ) why = "a local host name";
      }
      if( !why && strchr(host, '.')==NULL ) why = "a single-label (local) host name";
      if( !why && pName && nameLen ) snprintf(pName, nameLen, "%s", host);   /* to resolve */
    }
  }
  if( why ){
    snprintf(err, errLen, "url: %s is %s; webhooks may not reach it (list it in NT_WEBHOOK_ALLOW_HOSTS to allow it)", host, why);
    return NT_INVALID_ARGUMENT;
  }
  return NT_OK;
}

/* ---- bodies and retries --------------------------------------------------- */

char *webhookBody(const char *id, const char *event, const char *room, const char *table,
                  const char *row, double version, double atMs){
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", id);
  cJSON_AddStringToObject(o, "event", event);
  cJSON_AddStringToObject(o, "room", room);
  cJSON_AddStringToObject(o, "table", table);
  if( row ) cJSON_AddRawToObject(o, "row", row);
  else cJSON_AddNullToObject(o, "row");
  cJSON_AddNumberToObject(o, "version", version);
  cJSON_AddNumberToObject(o, "timestamp", atMs);
  char *text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return text;
}

/* A delivery's message: the whole delivery ({kind, room, id, webhookId,
** url, secret (sealed), event, body, timeoutMs}) when its body is at most
** WH_INLINE bytes, so the consumer posts it without asking the room; else
** only {kind, room, id}, and the consumer claims it (_webhookClaim). */
static cJSON *whMessage(Room *room, const cJSON *row){
  const cJSON *c[10];
  for(int i = 0; i < 10; i++) c[i] = cJSON_GetArrayItem(row, i);
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "kind", "webhook");
  cJSON_AddStringToObject(m, "room", room->name);
  cJSON_AddStringToObject(m, "id", cJSON_GetStringValue(c[0]) ? c[0]->valuestring : "");
  if( !cJSON_IsString(c[6]) || !cJSON_IsString(c[1]) || !cJSON_IsString(c[2]) ) return m;
  char *body = webhookBody(c[0]->valuestring, c[1]->valuestring, room->name, c[2]->valuestring,
                           cJSON_IsString(c[3]) ? c[3]->valuestring : NULL,
                           cJSON_GetNumberValue(c[4]), cJSON_GetNumberValue(c[5]));
  if( body && strlen(body) <= WH_INLINE ){
    cJSON_AddStringToObject(m, "webhookId", c[8]->valuestring);
    cJSON_AddStringToObject(m, "url", c[6]->valuestring);
    cJSON_AddStringToObject(m, "secret", c[7]->valuestring);
    cJSON_AddStringToObject(m, "event", c[1]->valuestring);
    cJSON_AddStringToObject(m, "body", body);
    cJSON_AddNumberToObject(m, "timeoutMs", room->webhooks ? room->webhooks->timeoutMs : 10000);
  }
  free(body);
  return m;
}

double webhookRetryDelay(int attempt, double baseSec, double capSec){
  if( attempt < 1 ) attempt = 1;
  double d = baseSec * pow(2, attempt - 1);
  return floor(fmin(d, capSec));
}

/* ---- capture: the triggers ------------------------------------------------- */

/* The CREATE TRIGGER text for table (cols[0..nCols)) and kind k. */
static char *whTriggerSql(const char *table, char **cols, int nCols, int k, char *name, size_t nameLen){
  snprintf(name, nameLen, "_wh_%s%s", table, whKinds[k].suffix);
  char event[NT_MAX_ID_LEN + 16];
  snprintf(event, sizeof event, "%s.%s", table, whKinds[k].event);
  Buf b = {0};
  bufAppendStr(&b, "CREATE TRIGGER ");
  bufAppendSqlIdent(&b, name);
  bufAppendStr(&b, " AFTER ");
  bufAppendStr(&b, whKinds[k].on);
  bufAppendStr(&b, " ON ");
  bufAppendSqlIdent(&b, table);
  bufAppendStr(&b, " BEGIN INSERT INTO _webhook_deliveries (id, webhook_id, event, tbl, row, version, at, updated_at)"
                   " SELECT 'dlv_' || lower(hex(randomblob(16))), w.id, ");
  bufAppendSqlString(&b, event);
  bufAppendStr(&b, ", ");
  bufAppendSqlString(&b, table);
  bufAppendStr(&b, ", json_object(");
  for(int i = 0; i < nCols; i++){
    if( i ) bufAppendStr(&b, ", ");
    bufAppendSqlString(&b, cols[i]);
    bufAppendStr(&b, ", ");
    bufAppendStr(&b, whKinds[k].ref);
    bufAppendStr(&b, ".");
    bufAppendSqlIdent(&b, cols[i]);
  }
  bufAppendStr(&b, "), (SELECT version FROM _room WHERE id = 1), " WH_NOW ", " WH_NOW
                   " FROM _webhooks w WHERE w.event IN (");
  bufAppendSqlString(&b, event);
  bufAppendStr(&b, ", '*'); END");
  return bufFinish(&b);
}

/* Does one of the room's webhooks (events, strings) want event? */
static int whWanted(const cJSON *events, const char *event){
  const cJSON *e;
  cJSON_ArrayForEach(e, events){
    if( cJSON_IsString(e) && (strcmp(e->valuestring, "*")==0 || strcmp(e->valuestring, event)==0) ) return 1;
  }
  return 0;
}

/* Append to script what makes one table's triggers match what the
** webhooks want: a trigger for each kind some webhook listens to, none for
** the others. */
static void whTableTriggers(Room *room, Buf *script, const cJSON *events, const char *table,
                            char **cols, int nCols){
  for(int k = 0; k < (int)(sizeof whKinds / sizeof whKinds[0]); k++){
    char name[NT_MAX_ID_LEN + 16], event[NT_MAX_ID_LEN + 16];
    snprintf(event, sizeof event, "%s.%s", table, whKinds[k].event);
    char *want = whWanted(events, event) ? whTriggerSql(table, cols, nCols, k, name, sizeof name) : NULL;
    if( want==NULL ) snprintf(name, sizeof name, "_wh_%s%s", table, whKinds[k].suffix);
    char *have = schemaObjectSql(room, name);
    if( have && (want==NULL || strcmp(have, want)!=0) ){
      bufAppendStr(script, "DROP TRIGGER ");
      bufAppendSqlIdent(script, name);
      bufAppendStr(script, ";\n");
    }
    if( want && (have==NULL || strcmp(have, want)!=0) ){
      bufAppendStr(script, want);
      bufAppendStr(script, ";\n");
    }
    free(want);
    free(have);
  }
}

static int whApplyScript(Room *room, void *arg){
  char err[256];
  int rc = storeRunFree(room, (const char*)arg, NULL, err, sizeof err);
  if( rc ) ntLog(NT_LOG_ERROR, "webhook triggers failed: %s", err);
  return rc;
}

/* The events of the room's webhooks (a new array), or NULL on error. */
static cJSON *whEvents(Room *room, int *pCount){
  char err[256];
  SqlResult res = {0};             /* a new room has no webhooks */
  if( !roomIsNew(room) && moduleSchemaHas(room, "webhook")   /* no table yet: none */
      && storeExec(room, "SELECT DISTINCT event FROM _webhooks", NULL, &res, err, sizeof err) ) return NULL;
  cJSON *out = cJSON_CreateArray();
  const cJSON *row;
  cJSON_ArrayForEach(row, res.rows) cJSON_AddItemToArray(out, cJSON_Duplicate(row->child, 0));
  storeResultFree(&res);
  *pCount = cJSON_GetArraySize(out);
  return out;
}

/* Make the capture triggers match the webhooks: a room table has the
** trigger of a kind only while a webhook listens to it, so a room without
** webhooks pays nothing on its writes. Run at open and whenever a webhook
** comes or goes. */
static int whInstall(Room *room){
  int nEvents = 0;
  cJSON *events = whEvents(room, &nEvents);
  if( events==NULL ) return NT_INTERNAL;
  if( room->webhooks ) room->webhooks->nEvents = nEvents;
  room->ownTriggers = nEvents > 0;  /* its triggers are in every function's plan (functions.c) */
  char *cached = NULL;
  if( schemaScriptCached(room, "wh", &cached)==NT_OK ){   /* a never-used room: no webhooks */
    cJSON_Delete(events);
    int rc = cached[0] ? storeTxn(room, whApplyScript, cached) : NT_OK;
    if( rc==NT_OK && cached[0] ) rc = schemaApply(room, cached);
    free(cached);
    return rc;
  }
  if( schemaEnsure(room) ){ cJSON_Delete(events); return NT_INTERNAL; }
  Buf script = {0};
  sqlite3_stmt *st = NULL;
  if( sqlite3_prepare_v2(room->guardDb,
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '^_wh^_%' ESCAPE '^'"
        " AND tbl_name NOT IN (SELECT name FROM sqlite_master WHERE type = 'table')", -1, &st, NULL)==SQLITE_OK ){
    while( sqlite3_step(st)==SQLITE_ROW ){
      bufAppendStr(&script, "DROP TRIGGER IF EXISTS ");
      bufAppendSqlIdent(&script, (const char*)sqlite3_column_text(st, 0));
      bufAppendStr(&script, ";\n");
    }
  }
  sqlite3_finalize(st);
  st = NULL;
  int rc = sqlite3_prepare_v2(room->guardDb,
    "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p"
    " WHERE m.type = 'table' AND m.name NOT LIKE '^_%' ESCAPE '^' AND m.name NOT LIKE 'sqlite^_%' ESCAPE '^'"
    " ORDER BY m.name, p.cid", -1, &st, NULL);
  if( rc!=SQLITE_OK ){ sqlite3_finalize(st); bufFree(&script); cJSON_Delete(events); return NT_INTERNAL; }
  char *table = NULL;
  char **cols = NULL;
  int nCols = 0;
  for(int more = 1; more; ){
    more = sqlite3_step(st)==SQLITE_ROW;
    const char *t = more ? (const char*)sqlite3_column_text(st, 0) : NULL;
    if( table && (!more || strcmp(t, table)!=0) ){
      whTableTriggers(room, &script, events, table, cols, nCols);
      for(int i = 0; i < nCols; i++) free(cols[i]);
      free(cols); free(table);
      cols = NULL; table = NULL; nCols = 0;
    }
    if( !more ) break;
    if( table==NULL && (table = ntStrdup(t))==NULL ){ script.oom = 1; break; }
    char **grown = realloc(cols, sizeof(char*) * (size_t)(nCols + 1));
    if( grown==NULL ){ script.oom = 1; break; }
    cols = grown;
    if( (cols[nCols] = ntStrdup((const char*)sqlite3_column_text(st, 1)))==NULL ){ script.oom = 1; break; }
    nCols++;
  }
  for(int i = 0; i < nCols; i++) free(cols[i]);
  free(cols); free(table);
  sqlite3_finalize(st);
  cJSON_Delete(events);
  if( !script.oom ) schemaScriptPut(room, "wh", script.p ? script.p : "");
  if( script.n==0 && !script.oom ){ bufFree(&script); return NT_OK; }
  char *sql = bufFinish(&script);
  if( sql==NULL ) return NT_NOMEM;
  rc = storeTxn(room, whApplyScript, sql);
  if( rc==NT_OK ) rc = schemaApply(room, sql);
  free(sql);
  return rc;
}

/* ---- the module ------------------------------------------------------------- */

static double whConfigNumber(const cJSON *cfg, const char *key, double fallback){
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
  return cJSON_IsNumber(v) && v->valuedouble > 0 ? v->valuedouble : fallback;
}

int webhookOpen(Room *room, const cJSON *config){
  const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(config, "webhooks");
  Webhooks *w = calloc(1, sizeof *w);
  if( w==NULL ) return NT_NOMEM;
  room->webhooks = w;
  const cJSON *allow = cJSON_GetObjectItemCaseSensitive(cfg, "allowHosts");
  w->allow = cJSON_IsArray(allow) ? cJSON_Duplicate(allow, 1) : cJSON_CreateArray();
  w->maxAttempts = (int)whConfigNumber(cfg, "maxAttempts", 6);
  w->retryBaseSec = whConfigNumber(cfg, "retryBaseSec", 10);
  w->timeoutMs = whConfigNumber(cfg, "timeoutMs", 10000);
  outqInit(&w->out, &webhookQueue, 1000 * whConfigNumber(cfg, "leaseSec", 900));
  int rc = whInstall(room);                        /* the tables are Module.schema's */
  if( rc==NT_OK && moduleSchemaHas(room, "webhook") ) outqOpen(room, &w->out);   /* none yet: nothing queued */
  return rc;
}

void webhookFree(Room *room){
  Webhooks *w = room->webhooks;
  if( w==NULL ) return;
  outqFree(&w->out);
  cJSON_Delete(w->allow);
  free(w);
  room->webhooks = NULL;
}

/* A commit may have captured deliveries whenever a webhook exists (the
** triggers may be newer than the plan of the function that wrote). */
void webhookOnCommit(Room *room, const Touched *t){
  (void)t;
  if( room->webhooks && room->webhooks->nEvents > 0 ) outqSoon(room, &room->webhooks->out);
}

double webhookNextDue(Room *room){
  return room->webhooks ? outqNextDue(&room->webhooks->out) : 0;
}

void webhookOnTimer(Room *room, double nowMs){
  if( room->webhooks && moduleSchemaHas(room, "webhook") ) outqOnTimer(room, &room->webhooks->out, nowMs);
}

int webhookTask(Room *room, const cJSON *payload, char *err, size_t errLen){
  (void)payload; (void)err; (void)errLen;
  return room->webhooks && moduleSchemaHas(room, "webhook") ? outqTask(room, &room->webhooks->out) : NT_OK;
}

/* ---- the methods ------------------------------------------------------------- */

/* Webhooks are managed by an admin, or by the owner of a private room. */
static int whMayManage(Call *call){
  const char *name = call->room->name;
  if( call->caller->isAdmin ) return NT_OK;
  if( strncmp(name, "user:", 5)==0 && strcmp(name + 5, call->caller->userId)==0 ) return NT_OK;
  return callFail(call, NT_PERMISSION_DENIED,
                  "webhooks are managed by an admin, or by the owner of a private user: room");
}

/* An app table of the room (in the schema mirror, not a system table). */
static int whIsTable(Room *room, const char *name){
  if( name[0]=='_' || strncmp(name, "sqlite_", 7)==0 ) return 0;
  sqlite3_stmt *st = NULL;
  int found = 0;
  if( schemaEnsure(room) ) return 0;
  if( sqlite3_prepare_v2(room->guardDb, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                         -1, &st, NULL)==SQLITE_OK ){
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    found = sqlite3_step(st)==SQLITE_ROW;
  }
  sqlite3_finalize(st);
  return found;
}

/* "*" or <table>.added|updated|deleted for a table of the room. */
static int whCheckEvent(Call *call, const char *event){
  if( strcmp(event, "*")==0 ) return NT_OK;
  const char *dot = strrchr(event, '.');
  if( dot && dot > event && (size_t)(dot - event) <= NT_MAX_ID_LEN ){
    char table[NT_MAX_ID_LEN + 1];
    memcpy(table, event, (size_t)(dot - event));
    table[dot - event] = 0;
    for(size_t k = 0; k < sizeof whKinds / sizeof whKinds[0]; k++){
      if( strcmp(dot + 1, whKinds[k].event)==0 ){
        if( whIsTable(call->room, table) ) return NT_OK;
        return callFail(call, NT_INVALID_ARGUMENT, "event: no table %s in this room", table);
      }
    }
  }
  return callFail(call, NT_INVALID_ARGUMENT, "event: expected <table>.added, <table>.updated, <table>.deleted or *");
}

/* A registration waiting for the host to seal its secret: one block, so
** the pending request's free() (asyncFreeAll) releases it whole. */
typedef struct WhPending {
  char id[40];                     /* "wh_" + 32 hex */
  char host[256];                  /* the host name the host resolved, or "" */
  char url[WH_MAX_URL + 1];
  char event[NT_MAX_ID_LEN + 16];
  char secret[WH_MAX_SECRET + 1];
  char by[NT_MAX_USER_ID_LEN + 1]; /* the registering user */
} WhPending;

static void whPendingFree(WhPending *p){
  if( p==NULL ) return;
  memset(p->secret, 0, sizeof p->secret);
  free(p);
}

/* The first registration's row, in the transaction that makes the tables
** (moduleSchemaTxn), or alone once they exist. */
typedef struct WhInsert {
  cJSON *args;                     /* the row's values, consumed (NULL once) */
  char *err;
  size_t errLen;
} WhInsert;

static int whInsertBody(Room *room, void *arg){
  WhInsert *ins = arg;
  cJSON *args = ins->args;
  ins->args = NULL;
  return storeRunFree(room, "INSERT INTO _webhooks (id, url, event, secret, created_by, created_at)"
                            " VALUES (?1, ?2, ?3, ?4, ?5, ?6)", args, ins->err, ins->errLen);
}

/* The consumer's calls come only for deliveries a room captured, so the
** tables exist; for a stray call to a room that never had them, they are
** made (empty), and the call answers as it always did for unknown ids. */
static int whTables(Call *call){
  return moduleSchemaTxn(call->room, "webhook", NULL, NULL, call->err, sizeof call->err);
}

static int whSealed(Room *room, void *state, int rc, cJSON *data, cJSON **ppResult,
                    char *err, size_t errLen){
  WhPending *p = state;
  const cJSON *sealed = cJSON_GetObjectItemCaseSensitive(data, "sealed");
  if( rc || !cJSON_IsString(sealed) ){
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(data, "message");
    snprintf(err, errLen, "the webhook could not be prepared: %s",
             cJSON_IsString(m) ? m->valuestring : "no sealed form");
    whPendingFree(p);
    return NT_UNAVAILABLE;
  }
  /* The addresses the name resolves to, when the host resolved it: none
  ** may be one the URL rules refuse. */
  const cJSON *addrs = cJSON_GetObjectItemCaseSensitive(data, "addresses");
  if( p->host[0] && cJSON_IsArray(addrs) ){
    if( cJSON_GetArraySize(addrs)==0 ){
      snprintf(err, errLen, "url: %s does not resolve", p->host);
      whPendingFree(p);
      return NT_INVALID_ARGUMENT;
    }
    const cJSON *a;
    cJSON_ArrayForEach(a, addrs){
      const char *why = cJSON_IsString(a) ? webhookCheckAddress(a->valuestring) : "not an address";
      if( why ){
        snprintf(err, errLen, "url: %s resolves to %s, %s; webhooks may not reach it (list it in"
                 " NT_WEBHOOK_ALLOW_HOSTS to allow it)", p->host, cJSON_IsString(a) ? a->valuestring : "?", why);
        whPendingFree(p);
        return NT_INVALID_ARGUMENT;
      }
    }
  }
  double now = floor(host_now_ms());
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(p->id));
  cJSON_AddItemToArray(args, cJSON_CreateString(p->url));
  cJSON_AddItemToArray(args, cJSON_CreateString(p->event));
  cJSON_AddItemToArray(args, cJSON_CreateString(sealed->valuestring));
  cJSON_AddItemToArray(args, cJSON_CreateString(p->by));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(now));
  WhInsert ins = { args, err, errLen };
  rc = moduleSchemaTxn(room, "webhook", whInsertBody, &ins, err, errLen);   /* the first makes the tables */
  if( ins.args ) cJSON_Delete(ins.args);
  if( rc==NT_OK && (rc = whInstall(room))!=NT_OK ){
    snprintf(err, errLen, "the capture triggers could not be installed");
  }
  if( rc==NT_OK ){
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "webhookId", p->id);
    cJSON_AddStringToObject(r, "secret", p->secret);
    cJSON_AddStringToObject(r, "url", p->url);
    cJSON_AddStringToObject(r, "event", p->event);
    cJSON_AddNumberToObject(r, "createdAt", now);
    *ppResult = r;
  }
  whPendingFree(p);
  return rc;
}

/* The number in the first column of the first row of sql (args consumed);
** 0 when the tables were never made (moduleSchemaHas). */
static double whScalar(Room *room, const char *sql, cJSON *args){
  char err[256];
  SqlResult res;
  if( !moduleSchemaHas(room, "webhook") ){ cJSON_Delete(args); return 0; }
  int rc = storeExec(room, sql, args, &res, err, sizeof err);
  cJSON_Delete(args);
  if( rc ) return -1;
  const cJSON *v = cJSON_GetArrayItem(cJSON_GetArrayItem(res.rows, 0), 0);
  double d = cJSON_IsNumber(v) ? v->valuedouble : 0;
  storeResultFree(&res);
  return d;
}

/* registerWebhook {url, event, secret?} -> {webhookId, secret, url, event, createdAt} */
int webhookRegister(Call *call, cJSON **ppResult){
  (void)ppResult;
  static const char *const keys[] = { "url", "event", "secret" };
  int rc = whMayManage(call);
  if( rc==NT_OK ) rc = CALL_ONLY_KEYS(call, keys);
  if( rc ) return rc;
  Webhooks *w = call->room->webhooks;
  const char *url = callString(call, "url", WH_MAX_URL);
  const char *event = url ? callString(call, "event", NT_MAX_ID_LEN + 16) : NULL;
  if( url==NULL || event==NULL ) return NT_INVALID_ARGUMENT;
  char host[256];
  if( (rc = webhookCheckUrl(url, w ? w->allow : NULL, host, sizeof host, call->err, sizeof call->err))!=NT_OK ) return rc;
  if( (rc = whCheckEvent(call, event))!=NT_OK ) return rc;
  const cJSON *given = cJSON_GetObjectItemCaseSensitive(call->payload, "secret");
  char made[8 + 64 + 1];
  const char *secret = made;
  if( given && !cJSON_IsNull(given) ){
    size_t n = cJSON_IsString(given) ? strlen(given->valuestring) : 0;
    int printable = n > 0;
    for(size_t i = 0; printable && i < n; i++){
      unsigned char c = (unsigned char)given->valuestring[i];
      printable = c > 0x20 && c < 0x7f;
    }
    if( n < WH_MIN_SECRET || n > WH_MAX_SECRET || !printable ){
      return callFail(call, NT_INVALID_ARGUMENT, "secret: expected %d to %d printable ASCII characters",
                      WH_MIN_SECRET, WH_MAX_SECRET);
    }
    secret = given->valuestring;
  }else{
    char a[33], b[33];
    ntRandomId(a);
    ntRandomId(b);
    snprintf(made, sizeof made, "whsec_%s%s", a, b);
  }
  if( whScalar(call->room, "SELECT count(*) FROM _webhooks", NULL) >= WH_MAX_HOOKS ){
    return callFail(call, NT_RATE_LIMITED, "at most %d webhooks per room", WH_MAX_HOOKS);
  }
  WhPending *p = calloc(1, sizeof *p);
  cJSON *req = cJSON_CreateObject();
  if( p==NULL || req==NULL ){
    whPendingFree(p);
    cJSON_Delete(req);
    return callFail(call, NT_NOMEM, "out of memory");
  }
  char hex[33];
  ntRandomId(hex);
  snprintf(p->id, sizeof p->id, "wh_%s", hex);
  snprintf(p->url, sizeof p->url, "%s", url);
  snprintf(p->event, sizeof p->event, "%s", event);
  snprintf(p->secret, sizeof p->secret, "%s", secret);
  snprintf(p->by, sizeof p->by, "%s", call->caller->userId);
  cJSON_AddStringToObject(req, "plain", p->secret);
  cJSON_AddStringToObject(req, "aad", p->id);
  if( host[0] ){
    snprintf(p->host, sizeof p->host, "%s", host);
    cJSON_AddStringToObject(req, "resolve", host);
  }
  rc = asyncStart(call, NT_ASYNC_WEBHOOK_PREPARE, req, whSealed, p);
  memset(made, 0, sizeof made);
  cJSON_Delete(req);
  if( rc!=NT_PENDING ) whPendingFree(p);
  return rc;
}

/* Rows of sql (args consumed) as objects under the given keys, in column order. */
static int whRows(Call *call, const char *sql, cJSON *args, const char *const *keys, int nKeys,
                  cJSON **ppResult){
  SqlResult res = {0};             /* no tables yet: no rows */
  int rc = moduleSchemaHas(call->room, "webhook")
         ? storeExec(call->room, sql, args, &res, call->err, sizeof call->err) : NT_OK;
  cJSON_Delete(args);
  if( rc ) return rc;
  cJSON *out = cJSON_CreateArray();
  const cJSON *row;
  cJSON_ArrayForEach(row, res.rows){
    cJSON *o = cJSON_CreateObject();
    const cJSON *v = row->child;
    for(int i = 0; i < nKeys && v; i++, v = v->next){
      cJSON_AddItemToObject(o, keys[i], cJSON_Duplicate(v, 1));
    }
    cJSON_AddItemToArray(out, o);
  }
  storeResultFree(&res);
  *ppResult = out;
  return NT_OK;
}

/* listWebhooks {} -> [{webhookId, url, event, createdBy, createdAt}]: never a secret. */
int webhookList(Call *call, cJSON **ppResult){
  static const char *const keys[] = { "webhookId", "url", "event", "createdBy", "createdAt" };
  int rc = whMayManage(call);
  if( rc==NT_OK ) rc = callOnlyKeys(call, NULL, 0);
  if( rc ) return rc;
  return whRows(call, "SELECT id, url, event, created_by, created_at FROM _webhooks ORDER BY created_at, id",
                NULL, keys, 5, ppResult);
}

/* The webhookId / deliveryId argument: a string, or INVALID_ARGUMENT. */
static const char *whId(Call *call, const char *key){
  return callString(call, key, NT_MAX_ID_LEN);
}

/* deleteWebhook {webhookId} -> {deleted: true}; its deliveries go with it. */
int webhookDelete(Call *call, cJSON **ppResult){
  static const char *const keys[] = { "webhookId" };
  int rc = whMayManage(call);
  if( rc==NT_OK ) rc = CALL_ONLY_KEYS(call, keys);
  if( rc ) return rc;
  const char *id = whId(call, "webhookId");
  if( id==NULL ) return NT_INVALID_ARGUMENT;
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(id));
  if( whScalar(call->room, "SELECT count(*) FROM _webhooks WHERE id = ?1", args) < 1 ){
    return callFail(call, NT_NOT_FOUND, "no webhook %s", id);
  }
  args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(id));
  rc = storeRunFree(call->room, "DELETE FROM _webhook_deliveries WHERE webhook_id = ?1;", args,
                    call->err, sizeof call->err);
  args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(id));
  if( rc==NT_OK ) rc = storeRunFree(call->room, "DELETE FROM _webhooks WHERE id = ?1", args,
                                    call->err, sizeof call->err);
  else cJSON_Delete(args);
  if( rc==NT_OK ) rc = whInstall(call->room);
  if( rc ) return rc;
  cJSON *r = cJSON_CreateObject();
  cJSON_AddBoolToObject(r, "deleted", 1);
  *ppResult = r;
  return NT_OK;
}

static const char *const whStatuses[] = { "pending", "queued", "sending", "failed", "delivered", "dead" };

/* listWebhookDeliveries {webhookId?, status?, limit?} -> the log, newest first. */
int webhookDeliveries(Call *call, cJSON **ppResult){
  static const char *const keys[] = { "webhookId", "status", "limit" };
  static const char *const cols[] = { "deliveryId", "webhookId", "event", "table", "version", "status",
    "attempts", "lastStatus", "lastError", "createdAt", "updatedAt", "deliveredAt" };
  int rc = whMayManage(call);
  if( rc==NT_OK ) rc = CALL_ONLY_KEYS(call, keys);
  if( rc ) return rc;
  const cJSON *hook = cJSON_GetObjectItemCaseSensitive(call->payload, "webhookId");
  const cJSON *status = cJSON_GetObjectItemCaseSensitive(call->payload, "status");
  const cJSON *limit = cJSON_GetObjectItemCaseSensitive(call->payload, "limit");
  if( hook && !cJSON_IsString(hook) ) return callFail(call, NT_INVALID_ARGUMENT, "webhookId: expected a string");
  if( status ){
    size_t i = 0;
    while( cJSON_IsString(status) && i < sizeof whStatuses / sizeof whStatuses[0]
           && strcmp(status->valuestring, whStatuses[i])!=0 ) i++;
    if( !cJSON_IsString(status) || i==sizeof whStatuses / sizeof whStatuses[0] ){
      return callFail(call, NT_INVALID_ARGUMENT,
                      "status: expected pending, queued, sending, failed, delivered or dead");
    }
  }
  double n = WH_LIST_DEFAULT;
  if( limit ){
    if( !cJSON_IsNumber(limit) || limit->valuedouble < 1 || limit->valuedouble > WH_LIST_MAX
        || limit->valuedouble!=floor(limit->valuedouble) ){
      return callFail(call, NT_INVALID_ARGUMENT, "limit: expected an integer from 1 to %d", WH_LIST_MAX);
    }
    n = limit->valuedouble;
  }
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, hook ? cJSON_CreateString(hook->valuestring) : cJSON_CreateNull());
  cJSON_AddItemToArray(args, status ? cJSON_CreateString(status->valuestring) : cJSON_CreateNull());
  cJSON_AddItemToArray(args, cJSON_CreateNumber(n));
  return whRows(call,
    "SELECT id, webhook_id, event, tbl, version, status, attempts, last_status, last_error, at, updated_at,"
    " delivered_at FROM _webhook_deliveries WHERE (?1 IS NULL OR webhook_id = ?1) AND (?2 IS NULL OR status = ?2)"
    " ORDER BY at DESC, rowid DESC LIMIT ?3", args, cols, 12, ppResult);
}

/* redeliverWebhook {deliveryId} -> {deliveryId, status: "pending"}: send it again. */
int webhookRedeliver(Call *call, cJSON **ppResult){
  static const char *const keys[] = { "deliveryId" };
  int rc = whMayManage(call);
  if( rc==NT_OK ) rc = CALL_ONLY_KEYS(call, keys);
  if( rc ) return rc;
  const char *id = whId(call, "deliveryId");
  if( id==NULL ) return NT_INVALID_ARGUMENT;
  if( !moduleSchemaHas(call->room, "webhook") ){
    return callFail(call, NT_NOT_FOUND, "no delivery %s (of a webhook that still exists)", id);
  }
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(id));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(floor(host_now_ms())));
  SqlResult res;
  rc = storeExec(call->room,
    "UPDATE _webhook_deliveries SET status = 'pending', updated_at = ?2 WHERE id = ?1"
    " AND webhook_id IN (SELECT id FROM _webhooks) RETURNING id", args, &res, call->err, sizeof call->err);
  cJSON_Delete(args);
  if( rc ) return rc;
  int found = cJSON_GetArraySize(res.rows) > 0;
  storeResultFree(&res);
  if( !found ) return callFail(call, NT_NOT_FOUND, "no delivery %s (of a webhook that still exists)", id);
  if( call->room->webhooks ) outqKick(call->room, &call->room->webhooks->out);
  cJSON *r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "deliveryId", id);
  cJSON_AddStringToObject(r, "status", "pending");
  *ppResult = r;
  return NT_OK;
}

/* ---- the consumer's calls (role system) ------------------------------------ */

/* payload.items as an array, with each item's "id" a string, or INVALID_ARGUMENT. */
static const cJSON *whItems(Call *call){
  const cJSON *items = cJSON_GetObjectItemCaseSensitive(call->payload, "items");
  if( !cJSON_IsArray(items) || cJSON_GetArraySize(items) > 100 ){
    callFail(call, NT_INVALID_ARGUMENT, "items: expected an array of at most 100");
    return NULL;
  }
  const cJSON *it;
  cJSON_ArrayForEach(it, items){
    if( !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(it, "id")) ){
      callFail(call, NT_INVALID_ARGUMENT, "items: each needs an id");
      return NULL;
    }
  }
  return items;
}

/* A JSON array of the items' ids, as text (caller frees). */
static char *whIdList(const cJSON *items){
  cJSON *ids = cJSON_CreateArray();
  const cJSON *it;
  cJSON_ArrayForEach(it, items){
    cJSON_AddItemToArray(ids, cJSON_CreateString(cJSON_GetObjectItemCaseSensitive(it, "id")->valuestring));
  }
  char *text = cJSON_PrintUnformatted(ids);
  cJSON_Delete(ids);
  return text;
}

static cJSON *whAnswer(cJSON *out, const char *id, const char *action){
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", id);
  cJSON_AddStringToObject(o, "action", action);
  cJSON_AddItemToArray(out, o);
  return o;
}

/* _webhookClaim {items: [{id}]} -> {items: [{id, action, …}]}: for each
** delivery, "deliver" with {url, secret (sealed), webhookId, event, body},
** "later" with {delaySeconds} while another attempt is in flight, or
** "skip" with {reason} (delivered, dead, unknown, webhook deleted). The
** deliveries handed out are marked sending. */
int webhookClaim(Call *call, cJSON **ppResult){
  int made = whTables(call);
  if( made ) return made;
  Room *room = call->room;
  Webhooks *w = room->webhooks;
  const cJSON *items = whItems(call);
  if( items==NULL || w==NULL ) return items ? callFail(call, NT_UNAVAILABLE, "webhooks are not open") : NT_INVALID_ARGUMENT;
  char *list = whIdList(items);
  double now = floor(host_now_ms());
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(list ? list : "[]"));
  SqlResult res;
  int rc = storeExec(room,
    "SELECT d.id, d.status, d.updated_at, d.event, d.tbl, d.row, d.version, d.at, w.url, w.secret, w.id"
    " FROM json_each(?1) j JOIN _webhook_deliveries d ON d.id = j.value"
    " LEFT JOIN _webhooks w ON w.id = d.webhook_id", args, &res, call->err, sizeof call->err);
  cJSON_Delete(args);
  if( rc ){ cJSON_free(list); return rc; }
  cJSON *r = cJSON_CreateObject();
  cJSON *out = cJSON_AddArrayToObject(r, "items");
  cJSON *claimed = cJSON_CreateArray();
  const cJSON *it;
  cJSON_ArrayForEach(it, items){
    const char *id = cJSON_GetObjectItemCaseSensitive(it, "id")->valuestring;
    const cJSON *row = NULL, *cand;
    cJSON_ArrayForEach(cand, res.rows){
      if( strcmp(cJSON_GetArrayItem(cand, 0)->valuestring, id)==0 ){ row = cand; break; }
    }
    if( row==NULL ){ cJSON_AddStringToObject(whAnswer(out, id, "skip"), "reason", "unknown delivery"); continue; }
    const char *status = cJSON_GetArrayItem(row, 1)->valuestring;
    double updated = cJSON_GetArrayItem(row, 2)->valuedouble;
    const cJSON *url = cJSON_GetArrayItem(row, 8);
    if( !cJSON_IsString(url) ){ cJSON_AddStringToObject(whAnswer(out, id, "skip"), "reason", "webhook deleted"); continue; }
    if( strcmp(status, "delivered")==0 || strcmp(status, "dead")==0 ){
      cJSON_AddStringToObject(whAnswer(out, id, "skip"), "reason", status);
      continue;
    }
    if( strcmp(status, "sending")==0 && now - updated < 2 * w->timeoutMs ){
      cJSON_AddNumberToObject(whAnswer(out, id, "later"), "delaySeconds", ceil(2 * w->timeoutMs / 1000));
      continue;
    }
    const cJSON *row4 = cJSON_GetArrayItem(row, 5);
    char *body = webhookBody(id, cJSON_GetArrayItem(row, 3)->valuestring, room->name,
                             cJSON_GetArrayItem(row, 4)->valuestring,
                             cJSON_IsString(row4) ? row4->valuestring : NULL,
                             cJSON_GetArrayItem(row, 6)->valuedouble, cJSON_GetArrayItem(row, 7)->valuedouble);
    if( body==NULL ){ cJSON_AddStringToObject(whAnswer(out, id, "skip"), "reason", "out of memory"); continue; }
    cJSON *o = whAnswer(out, id, "deliver");
    cJSON_AddStringToObject(o, "url", url->valuestring);
    cJSON_AddStringToObject(o, "secret", cJSON_GetArrayItem(row, 9)->valuestring);
    cJSON_AddStringToObject(o, "webhookId", cJSON_GetArrayItem(row, 10)->valuestring);
    cJSON_AddStringToObject(o, "event", cJSON_GetArrayItem(row, 3)->valuestring);
    cJSON_AddStringToObject(o, "body", body);
    cJSON_AddNumberToObject(o, "timeoutMs", w->timeoutMs);
    free(body);
    cJSON_AddItemToArray(claimed, cJSON_CreateString(id));
  }
  storeResultFree(&res);
  cJSON_free(list);
  if( cJSON_GetArraySize(claimed) > 0 ){
    char *ids = cJSON_PrintUnformatted(claimed);
    args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_CreateString(ids ? ids : "[]"));
    cJSON_AddItemToArray(args, cJSON_CreateNumber(now));
    cJSON_free(ids);
    rc = storeRunFree(room, "UPDATE _webhook_deliveries SET status = 'sending', updated_at = ?2"
                            " WHERE id IN (SELECT value FROM json_each(?1))", args, call->err, sizeof call->err);
  }
  cJSON_Delete(claimed);
  if( rc ){ cJSON_Delete(r); return rc; }
  *ppResult = r;
  return NT_OK;
}

/* _webhookReport {items: [{id, attempt, ok, status?, error?}]} -> {items:
** [{id, action: "done"|"retry"|"dead", delaySeconds?}]}: one attempt each,
** recorded in one statement. */
int webhookReport(Call *call, cJSON **ppResult){
  int made = whTables(call);
  if( made ) return made;
  Room *room = call->room;
  Webhooks *w = room->webhooks;
  const cJSON *items = whItems(call);
  if( items==NULL || w==NULL ) return items ? callFail(call, NT_UNAVAILABLE, "webhooks are not open") : NT_INVALID_ARGUMENT;
  double now = floor(host_now_ms());
  double cap = fmin(WH_QUEUE_MAX_DELAY, w->out.leaseMs / 2000);
  cJSON *r = cJSON_CreateObject();
  cJSON *out = cJSON_AddArrayToObject(r, "items");
  cJSON *rows = cJSON_CreateArray();
  const cJSON *it;
  cJSON_ArrayForEach(it, items){
    const char *id = cJSON_GetObjectItemCaseSensitive(it, "id")->valuestring;
    const cJSON *attempt = cJSON_GetObjectItemCaseSensitive(it, "attempt");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(it, "status");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(it, "error");
    int ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "ok"));
    int n = cJSON_IsNumber(attempt) && attempt->valuedouble >= 1 ? (int)attempt->valuedouble : 1;
    int dead = !ok && n >= w->maxAttempts;
    char msg[WH_MAX_ERROR + 1] = "";
    if( cJSON_IsString(error) ) snprintf(msg, sizeof msg, "%s", error->valuestring);
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "id", id);
    cJSON_AddStringToObject(row, "next", ok ? "delivered" : dead ? "dead" : "failed");
    if( cJSON_IsNumber(status) ) cJSON_AddNumberToObject(row, "code", status->valuedouble);
    if( !ok ) cJSON_AddStringToObject(row, "error", msg[0] ? msg : "failed");
    cJSON_AddItemToArray(rows, row);
    cJSON *o = whAnswer(out, id, ok ? "done" : dead ? "dead" : "retry");
    if( !ok && !dead ) cJSON_AddNumberToObject(o, "delaySeconds", webhookRetryDelay(n, w->retryBaseSec, cap));
  }
  char *text = cJSON_PrintUnformatted(rows);
  cJSON_Delete(rows);
  cJSON *args = cJSON_CreateArray();
  cJSON_AddItemToArray(args, cJSON_CreateString(text ? text : "[]"));
  cJSON_AddItemToArray(args, cJSON_CreateNumber(now));
  cJSON_free(text);
  int rc = storeRunFree(room,
    "UPDATE _webhook_deliveries SET status = j.value ->> 'next', attempts = attempts + 1,"
    " last_status = j.value ->> 'code', last_error = j.value ->> 'error', updated_at = ?2,"
    " delivered_at = CASE j.value ->> 'next' WHEN 'delivered' THEN ?2 ELSE delivered_at END"
    " FROM json_each(?1) AS j WHERE _webhook_deliveries.id = j.value ->> 'id'"
    " AND _webhook_deliveries.status NOT IN ('delivered', 'dead')", args, call->err, sizeof call->err);
  if( rc ){ cJSON_Delete(r); return rc; }
  *ppResult = r;
  return NT_OK;
}

/* _webhookDead {items: [{id, error?}]} -> {dead: n}: the dead-letter queue's
** consumer, for messages the consumer could not handle at all. */
int webhookDead(Call *call, cJSON **ppResult){
  int made = whTables(call);
  if( made ) return made;
  const cJSON *items = whItems(call);
  if( items==NULL ) return NT_INVALID_ARGUMENT;
  double now = floor(host_now_ms());
  double dead = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, items){
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(it, "error");
    char msg[WH_MAX_ERROR + 1];
    snprintf(msg, sizeof msg, "%s", cJSON_IsString(error) ? error->valuestring : "moved to the dead-letter queue");
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_CreateString(cJSON_GetObjectItemCaseSensitive(it, "id")->valuestring));
    cJSON_AddItemToArray(args, cJSON_CreateString(msg));
    cJSON_AddItemToArray(args, cJSON_CreateNumber(now));
    SqlResult res;
    int rc = storeExec(call->room, "UPDATE _webhook_deliveries SET status = 'dead', last_error = ?2, updated_at = ?3"
                       " WHERE id = ?1 AND status NOT IN ('delivered', 'dead') RETURNING id",
                       args, &res, call->err, sizeof call->err);
    cJSON_Delete(args);
    if( rc ) return rc;
    dead += cJSON_GetArraySize(res.rows);
    storeResultFree(&res);
  }
  cJSON *r = cJSON_CreateObject();
  cJSON_AddNumberToObject(r, "dead", dead);
  *ppResult = r;
  return NT_OK;
}
