#include "store/PgStore.h"
#include "store/StoreQueries.h"

#include "store/PgUtil.h"
#include "util/Clock.h"

#include <algorithm>
#include <stdexcept>
#include <unordered_map>

namespace clayhook {

using namespace store_sql;
using namespace pg;

// The schema, one migration per version. Applied in order by migrate(), under
// a transaction-scoped advisory lock, each recorded in clayhook_schema: hosts
// that start at once apply each exactly once, and a database migrated by a
// newer clayhook is refused rather than misread.
//
// Differences from the SQLite schema, and why:
// - dedup is keyed by (source, idempotency_key) itself: a primary key is what
//   makes N hosts inserting one key at once store it once (INSERT ... ON
//   CONFLICT DO NOTHING waits for the other transaction and then does nothing).
// - Strings that come from the network (type, idempotency key, order key,
//   body, errors and reasons) are bytea: PostgreSQL's text refuses NUL and
//   invalid UTF-8, and one such delivery must not fail its batch.
// - events.seq and deliveries.id are identity columns: every host draws from
//   the same sequences.
// - deliveries_pending is ordered by due_ms: claimable() walks it.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE events (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    source text NOT NULL,
    type bytea NOT NULL,
    idempotency_key bytea NOT NULL,
    received_at_ms bigint NOT NULL,
    body bytea NOT NULL
);
CREATE TABLE dedup (
    source text NOT NULL,
    idempotency_key bytea NOT NULL,
    event_id text NOT NULL,
    first_seen_ms bigint NOT NULL,
    PRIMARY KEY (source, idempotency_key)
);
CREATE INDEX dedup_by_first_seen ON dedup(first_seen_ms);
CREATE TABLE deliveries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_seq bigint NOT NULL,
    plugin text NOT NULL,
    state smallint NOT NULL,
    due_ms bigint NOT NULL,
    attempts integer NOT NULL,
    scheduled boolean NOT NULL,
    age_from_ms bigint NOT NULL,
    finished_ms bigint NOT NULL,
    order_key bytea NOT NULL,
    last_error bytea NOT NULL,
    claimed_by text NOT NULL DEFAULT '',
    lease_until_ms bigint NOT NULL DEFAULT 0
);
CREATE INDEX deliveries_by_event ON deliveries(event_seq);
CREATE INDEX deliveries_pending ON deliveries(due_ms, id) WHERE state = 0;
CREATE INDEX deliveries_dead ON deliveries(plugin, id) WHERE state = 2;
CREATE INDEX deliveries_pending_by_key ON deliveries(plugin, order_key, id)
    WHERE state = 0 AND order_key <> ''::bytea;
CREATE TABLE attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id bigint NOT NULL,
    attempt integer NOT NULL,
    started_ms bigint NOT NULL,
    duration_us bigint NOT NULL,
    outcome text NOT NULL,
    reason bytea NOT NULL
);
CREATE INDEX attempts_by_delivery ON attempts(delivery_id, id);
CREATE TABLE kv (
    plugin text NOT NULL,
    key bytea NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (plugin, key)
);
CREATE TABLE plugin_state (
    plugin text PRIMARY KEY,
    paused boolean NOT NULL
);
)sql",
    // 2: claims that never reported (the host died during the call),
    // counted by the claim that finds their lease left behind.
    R"sql(
ALTER TABLE deliveries ADD COLUMN lost_attempts integer NOT NULL DEFAULT 0;
)sql",
};

namespace {

// pg_advisory_xact_lock key for migrations: "clayhook" in ASCII.
constexpr const char* kMigrationLock = "7164774065524289387";

int64_t now_ms() {
    return SystemClock::unix_ms();
}

std::string hex_bytea(std::string_view v) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string s = "\\\\x";  // inside a quoted array element: \x
    for (unsigned char c : v) {
        s += kHex[c >> 4];
        s += kHex[c & 0xf];
    }
    return s;
}

// A bytea[] literal of raw values.
std::string bytea_array(const std::vector<std::string_view>& v) {
    std::string s = "{";
    for (size_t i = 0; i < v.size(); ++i) {
        if (i) s += ',';
        s += '"';
        s += hex_bytea(v[i]);
        s += '"';
    }
    s += '}';
    return s;
}

DeliveryRef read_ref(const PGresult* r, int i) {
    DeliveryRef ref;
    ref.id = int_at(r, i, 0);
    ref.event_seq = int_at(r, i, 1);
    ref.plugin = bytes_at(r, i, 2);
    ref.due_ms = int_at(r, i, 3);
    ref.attempts = static_cast<uint32_t>(int_at(r, i, 4));
    ref.received_at_ms = int_at(r, i, 5);
    ref.order_key = bytes_at(r, i, 6);
    ref.age_from_ms = int_at(r, i, 7);
    return ref;
}

StoredEvent read_event(const PGresult* r, int i) {
    StoredEvent ev;
    ev.seq = int_at(r, i, 0);
    ev.id = bytes_at(r, i, 1);
    ev.source = bytes_at(r, i, 2);
    ev.type = bytes_at(r, i, 3);
    ev.key = bytes_at(r, i, 4);
    ev.received_at_ms = int_at(r, i, 5);
    ev.body = bytes_at(r, i, 6);
    return ev;
}

DeliveryState state_from(int64_t v) {
    switch (v) {
        case 1:
            return DeliveryState::done;
        case 2:
            return DeliveryState::dead;
        default:
            return DeliveryState::pending;
    }
}

int state_code(DeliveryState s) {
    switch (s) {
        case DeliveryState::pending:
            return 0;
        case DeliveryState::done:
            return 1;
        case DeliveryState::dead:
            return 2;
    }
    return 0;
}

DeliveryInfo read_info(const PGresult* r, int i) {
    DeliveryInfo d;
    d.id = int_at(r, i, 0);
    d.event_id = bytes_at(r, i, 1);
    d.event_type = bytes_at(r, i, 2);
    d.plugin = bytes_at(r, i, 3);
    d.state = state_from(int_at(r, i, 4));
    d.attempts = static_cast<uint32_t>(int_at(r, i, 5));
    d.due_ms = int_at(r, i, 6);
    d.finished_ms = int_at(r, i, 7);
    d.received_at_ms = int_at(r, i, 8);
    d.last_error = bytes_at(r, i, 9);
    d.order_key = bytes_at(r, i, 10);
    d.claimed_by = bytes_at(r, i, 11);
    d.lease_until_ms = int_at(r, i, 12);
    return d;
}

}  // namespace

PgUrlInfo inspect_postgres_url(const std::string& url) {
    char* err = nullptr;
    PQconninfoOption* opts = PQconninfoParse(url.c_str(), &err);
    if (err) PQfreemem(err);  // libpq's message may quote the string
    if (!opts) {
        throw std::runtime_error(
            "store.postgres_url is not a valid PostgreSQL URL or connection string (its text is "
            "not shown: it may hold a password)");
    }
    PgUrlInfo info;
    std::string hostaddr, port = "5432", db, user;
    for (PQconninfoOption* o = opts; o->keyword; ++o) {
        if (!o->val) continue;
        const std::string_view k = o->keyword;
        if (k == "host") info.host = o->val;
        if (k == "hostaddr") hostaddr = o->val;
        if (k == "port") port = o->val;
        if (k == "dbname") db = o->val;
        if (k == "user") user = o->val;
        if (k == "sslmode") info.sslmode = o->val;
    }
    PQconninfoFree(opts);
    if (info.host.empty()) info.host = hostaddr;
    if (db.empty()) db = user;
    info.name = "postgresql://" + (user.empty() ? "" : user + "@") +
                (info.host.empty() ? "localhost" : info.host) + ":" + port + "/" + db;
    return info;
}

bool PgUrlInfo::local() const {
    if (host.empty() || host.front() == '/') return true;  // a Unix socket
    // Several hosts ("a,b"): local only if every one is.
    size_t from = 0;
    while (from <= host.size()) {
        size_t comma = host.find(',', from);
        std::string h = host.substr(from, comma == std::string::npos ? comma : comma - from);
        if (!(h.empty() || h == "localhost" || h == "::1" || h.rfind("127.", 0) == 0 ||
              h.front() == '/'))
            return false;
        if (comma == std::string::npos) break;
        from = comma + 1;
    }
    return true;
}

int64_t PgStore::known_schema_version() {
    return static_cast<int64_t>(std::size(kMigrations));
}

PgStore::PgStore(const StoreConfig& config, size_t max_queue, Tuning tuning)
    : owner_(config.host_id.empty() ? default_store_owner() : config.host_id),
      durable_(config.durable),
      pool_size_(std::max<size_t>(config.postgres_pool, 1)),
      connect_timeout_(config.postgres_connect_timeout),
      tuning_(tuning) {
    if (!config.postgres_url || !config.postgres_url->resolved ||
        config.postgres_url->value.empty())
        throw std::runtime_error(
            "cannot open store (engine postgres): store.postgres_url is not set or did not "
            "resolve");
    url_ = config.postgres_url->value;
    name_ = inspect_postgres_url(url_).name;
    auto fail = [&](const std::string& why) {
        return std::runtime_error("cannot open store " + name_ + ": " + why);
    };
    if (max_queue == 0) throw fail("the insert queue must hold at least one request");
    try {
        {
            Conn c = conn();
            migrate(c.get());
        }
        if (!ensure_writer()) throw std::runtime_error(writer_error_);
        GroupCommit::Limits limits;
        limits.max_queue = max_queue;
        limits.max_batch = tuning_.max_batch;
        limits.max_updates = tuning_.max_updates;
        limits.idle_period = tuning_.reconnect_every;
        serving_ = true;  // before the writer thread starts: it reads it
        gc_ = std::make_unique<GroupCommit>(static_cast<GroupCommit::Committer&>(*this), limits,
                                            "store " + name_);
    } catch (const std::exception& e) {
        if (wconn_) PQfinish(wconn_);
        wconn_ = nullptr;
        for (pg_conn* c : idle_)
            PQfinish(c);
        idle_.clear();
        throw fail(e.what());
    }
}

PgStore::~PgStore() {
    gc_->stop();
    gc_.reset();
    if (wconn_) PQfinish(wconn_);
    std::unique_lock lk(pool_mu_);
    // Every Conn is gone once the callers are (as for any object).
    for (pg_conn* c : idle_)
        PQfinish(c);
    idle_.clear();
}

pg_conn* PgStore::connect() const {
    const std::string timeout =
        std::to_string(std::max<int64_t>(1, (connect_timeout_.count() + 999) / 1000));
    // Ours first: what the URL sets wins over them (expand_dbname).
    // TCP keepalives and a user timeout: a server that stops answering
    // without closing (a network cut, a paused VM) fails the connection in
    // about 15 s instead of blocking the writer for ever.
    const char* keys[] = {"application_name",
                          "connect_timeout",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          "dbname",
                          nullptr};
    const char* values[] = {"clayhook", timeout.c_str(), "1",          "5",    "2",
                            "3",        "15000",         url_.c_str(), nullptr};
    PGconn* c = PQconnectdbParams(keys, values, 1);
    if (!c) throw std::runtime_error("out of memory connecting to " + name_);
    if (PQstatus(c) != CONNECTION_OK) {
        std::string m = error_of(c);
        PQfinish(c);
        throw std::runtime_error(m);
    }
    // Server notices ("relation ... already exists, skipping") are not
    // errors; libpq would print them on stderr.
    PQsetNoticeProcessor(
        c, [](void*, const char*) {}, nullptr);
    return c;
}

PgStore::Conn PgStore::conn() {
    std::unique_lock lk(pool_mu_);
    pool_cv_.wait(lk, [&] { return !idle_.empty() || open_ < pool_size_; });
    if (!idle_.empty()) {
        pg_conn* c = idle_.back();
        idle_.pop_back();
        return Conn(*this, c);
    }
    ++open_;
    lk.unlock();
    try {
        return Conn(*this, connect());
    } catch (...) {
        lk.lock();
        --open_;
        pool_cv_.notify_one();
        throw;
    }
}

PgStore::Conn::~Conn() {
    std::lock_guard lk(s_.pool_mu_);
    if (PQstatus(c_) == CONNECTION_OK && PQtransactionStatus(c_) == PQTRANS_IDLE) {
        s_.idle_.push_back(c_);
    } else {
        // Broken (the server went away) or left inside a transaction: a
        // fresh one replaces it on demand.
        PQfinish(c_);
        --s_.open_;
    }
    s_.pool_cv_.notify_one();
}

template <class F>
auto PgStore::with_conn(F&& fn) -> decltype(fn(static_cast<pg_conn*>(nullptr))) {
    for (int attempt = 0;; ++attempt) {
        Conn c = conn();
        try {
            return fn(c.get());
        } catch (const std::exception&) {
            // Broken before or during the call: the Conn drops it, and a
            // fresh connection gets one more try. A server that is really
            // gone fails that one too.
            if (attempt == 0 && PQstatus(c.get()) != CONNECTION_OK) continue;
            throw;
        }
    }
}

void PgStore::txn(const std::string& what, const std::function<void(pg_conn*)>& fn) {
    with_conn([&](PGconn* c) {
        try {
            exec(c, "BEGIN", what);
            fn(c);
            exec(c, "COMMIT", what);
        } catch (const std::exception& e) {
            if (PQstatus(c) == CONNECTION_OK) {
                Result r(PQexec(c, "ROLLBACK"));
            }
            throw std::runtime_error(what + " in " + name_ + ": " + e.what());
        }
    });
}

void PgStore::migrate(pg_conn* c) {
    exec(c, "BEGIN", "begin the migration");
    try {
        // Before anything else, so concurrent first starts cannot both
        // create the tables.
        exec(c, "SELECT pg_advisory_xact_lock($1::bigint)", Params().text(kMigrationLock),
             "wait for the migration lock");
        // Created only when missing: a role with no CREATE right (granted
        // only for the first start and upgrades) can start on a database
        // that is up to date.
        Result exists = exec(c, "SELECT to_regclass('clayhook_schema') IS NOT NULL",
                             "look for the schema table");
        if (int_at(exists.get(), 0, 0) == 0)
            exec(c,
                 "CREATE TABLE clayhook_schema (version integer PRIMARY KEY,"
                 " applied_at_ms bigint NOT NULL, applied_by text NOT NULL)",
                 "create the schema table");
        Result v = exec(c, "SELECT coalesce(max(version), 0)::bigint FROM clayhook_schema",
                        "read the schema version");
        int64_t version = int_at(v.get(), 0, 0);
        if (version > known_schema_version()) {
            throw std::runtime_error("its schema version " + std::to_string(version) +
                                     " is newer than this clayhook understands (" +
                                     std::to_string(known_schema_version()) + ")");
        }
        for (; version < known_schema_version(); ++version) {
            Result r(PQexec(c, kMigrations[version]));  // several statements: simple protocol
            if (!ok(r.get()))
                throw std::runtime_error("apply schema migration " + std::to_string(version + 1) +
                                         ": " + error_of(r.get(), c));
            exec(c,
                 "INSERT INTO clayhook_schema(version, applied_at_ms, applied_by)"
                 " VALUES($1::integer, $2::bigint, $3::text)",
                 Params().i64(version + 1).i64(now_ms()).text(owner_), "record the migration");
        }
        exec(c, "COMMIT", "commit the migration");
        schema_version_ = version;
    } catch (...) {
        Result r(PQexec(c, "ROLLBACK"));
        throw;
    }
}

// ---- The write path ----

namespace {

constexpr const char* kInsertSql =
    "WITH d AS ("
    " INSERT INTO dedup(source, idempotency_key, event_id, first_seen_ms)"
    " VALUES($1::text, $2::bytea, $3::text, $4::bigint) ON CONFLICT DO NOTHING"
    " RETURNING event_id),"
    " e AS ("
    " INSERT INTO events(id, source, type, idempotency_key, received_at_ms, body)"
    " SELECT $3::text, $1::text, $5::bytea, $2::bytea, $4::bigint, $6::bytea FROM d"
    " RETURNING seq),"
    " dl AS ("
    " INSERT INTO deliveries(event_seq, plugin, state, due_ms, attempts, scheduled, age_from_ms,"
    " finished_ms, order_key, last_error)"
    " SELECT e.seq, p.plugin, 0, $4::bigint, 0, false, $4::bigint, 0, p.order_key, ''::bytea"
    " FROM e CROSS JOIN unnest($7::text[], $8::bytea[]) WITH ORDINALITY AS p(plugin, order_key, "
    "ord)"
    " ORDER BY p.ord RETURNING id, plugin)"
    " SELECT e.seq, dl.id, dl.plugin FROM e LEFT JOIN dl ON true";

constexpr const char* kUpdateSql =
    "WITH u AS ("
    " UPDATE deliveries SET state = $2::smallint, attempts = $3::integer, due_ms = $4::bigint,"
    " finished_ms = $5::bigint, last_error = $6::bytea, lease_until_ms = 0"
    " WHERE id = $1::bigint AND state = 0 AND (claimed_by = $7::text OR claimed_by = '')"
    " RETURNING id)"
    " INSERT INTO attempts(delivery_id, attempt, started_ms, duration_us, outcome, reason)"
    " SELECT u.id, $9::integer, $10::bigint, $11::bigint, $12::text, $13::bytea FROM u"
    " WHERE $8::boolean";

// Per-key exclusivity across hosts: a delivery with an ordering key is
// claimed only while no other pending delivery of its (plugin, key) is under
// a live lease or older. Two hosts claiming two deliveries of one key at once
// could each miss the other's uncommitted lease, so the claim first takes a
// transaction-scoped advisory lock per key (try-lock: never waits, so claims
// cannot deadlock), in a statement of its own; the claim statement that
// follows has a snapshot taken after the lock, so it sees the lease of the
// transaction that held the lock before. The lock is re-taken (it nests)
// inside the claim so a key locked by another transaction right now is skipped.
constexpr const char* kClaimLockSql =
    "SELECT pg_try_advisory_xact_lock(hashtextextended(d.plugin || ':' ||"
    " encode(d.order_key, 'hex'), 0)) FROM deliveries d"
    " WHERE d.id = ANY($1::bigint[]) AND d.state = 0 AND d.order_key <> ''::bytea";

constexpr const char* kClaimSql =
    "WITH c AS ("
    " SELECT d.id FROM deliveries d"
    " WHERE d.id = ANY($1::bigint[]) AND d.state = 0"
    " AND (d.lease_until_ms <= $4::bigint OR d.claimed_by = $2::text)"
    " AND (d.order_key = ''::bytea OR ("
    " pg_try_advisory_xact_lock(hashtextextended(d.plugin || ':' || encode(d.order_key, 'hex'),"
    " 0))"
    " AND NOT EXISTS (SELECT 1 FROM deliveries o"
    " WHERE o.plugin = d.plugin AND o.order_key = d.order_key AND o.state = 0 AND o.id <> d.id"
    " AND (o.id < d.id OR o.lease_until_ms > $4::bigint))))"
    " FOR UPDATE SKIP LOCKED)"
    " UPDATE deliveries t SET attempts = t.attempts + 1,"
    " lost_attempts = t.lost_attempts + (t.lease_until_ms <> 0)::int,"
    " claimed_by = $2::text, lease_until_ms = $3::bigint FROM c WHERE t.id = c.id"
    " RETURNING t.id, t.attempts, t.lost_attempts";

}  // namespace

void PgStore::rollback_writer() noexcept {
    PGconn* c = wconn_;
    bool ok_ = c && PQtransactionStatus(c) == PQTRANS_IDLE;
    if (!ok_ && c && send(c, "ROLLBACK", Params{}) && PQpipelineSync(c) == 1) {
        Result r(PQgetResult(c));
        while (PGresult* extra = PQgetResult(c))
            PQclear(extra);
        Result sync(PQgetResult(c));
        ok_ = sync && PQresultStatus(sync.get()) == PGRES_PIPELINE_SYNC &&
              PQtransactionStatus(c) == PQTRANS_IDLE;
    }
    if (!ok_ && wconn_) {
        // Unknown state: a fresh connection is simpler than repair.
        PQfinish(wconn_);
        wconn_ = nullptr;
        next_reconnect_ = {};
    }
}

bool PgStore::ensure_writer() noexcept {
    if (wconn_ && PQstatus(wconn_) == CONNECTION_OK && PQtransactionStatus(wconn_) == PQTRANS_IDLE)
        return true;
    if (wconn_) PQfinish(wconn_);
    wconn_ = nullptr;
    // While the database is away, one attempt per reconnect_every: the
    // commits in between fail at once (503) instead of each waiting for a
    // connection timeout.
    const auto now = std::chrono::steady_clock::now();
    if (now < next_reconnect_) return false;
    next_reconnect_ = now + tuning_.reconnect_every;
    try {
        wconn_ = connect();
        if (!durable_) exec(wconn_, "SET synchronous_commit = off", "relax durability");
        // Prepared once per connection: planning the insert cost the
        // server as much CPU as running it, at every delivery.
        for (const auto& [name, sql] :
             {std::pair{"clayhook_insert", kInsertSql}, std::pair{"clayhook_result", kUpdateSql},
              std::pair{"clayhook_claim_lock", kClaimLockSql},
              std::pair{"clayhook_claim", kClaimSql}}) {
            Result r(PQprepare(wconn_, name, sql, 0, nullptr));
            if (!ok(r.get()))
                throw std::runtime_error(std::string("prepare ") + name + ": " +
                                         error_of(r.get(), wconn_));
        }
        // One live process per host_id: two would share their claims (each
        // takes the other's deliveries for its own). The writer's session
        // holds the lock; it goes with the session, however it ends. Checked
        // at start only: after a network cut the server may keep this
        // process's old session (and the lock) until it notices, and the
        // writer must not wait for that to serve again.
        Result mine = exec(wconn_, "SELECT pg_try_advisory_lock(hashtextextended($1::text, 7))",
                           Params().text("clayhook host_id " + owner_), "lock this host_id");
        if (int_at(mine.get(), 0, 0) == 0 && !serving_)
            throw std::runtime_error("store.host_id \"" + owner_ +
                                     "\" is in use by another running clayhook host; two hosts "
                                     "with one host_id would take each other's deliveries");
        if (PQenterPipelineMode(wconn_) != 1) throw std::runtime_error(error_of(wconn_));
        writer_error_.clear();
        return true;
    } catch (const std::exception& e) {
        writer_error_ = e.what();
        if (wconn_) PQfinish(wconn_);
        wconn_ = nullptr;
        return false;
    }
}

bool PgStore::commit(GroupCommit::Batch& batch, std::string& error) noexcept {
    std::string why;
    bool ok_ = false;
    try {
        ok_ = commit_once(batch, why);
    } catch (const std::exception& e) {
        why = e.what();
    }
    writable_.store(ok_, std::memory_order_relaxed);
    if (!ok_) error = "the PostgreSQL store " + name_ + " did not commit: " + why;
    return ok_;
}

bool PgStore::commit_once(GroupCommit::Batch& batch, std::string& error) {
    new_deliveries_.clear();
    if (!ensure_writer()) {
        error = writer_error_.empty() ? "no connection" : "no connection (" + writer_error_ + ")";
        return false;
    }
    PGconn* c = wconn_;
    // Inserts in (source, key) order: every host takes the dedup locks of a
    // batch in the same order, so two batches sharing keys cannot deadlock.
    std::vector<size_t> order(batch.inserts.size());
    for (size_t i = 0; i < order.size(); ++i)
        order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        const NewEvent& x = *batch.inserts[a]->event;
        const NewEvent& y = *batch.inserts[b]->event;
        if (x.source != y.source) return x.source < y.source;
        return x.idempotency_key < y.idempotency_key;
    });
    std::vector<std::string> ids(batch.inserts.size());
    const int64_t now = now_ms();

    // Results in delivery id order (stable: two results of one delivery keep
    // theirs), as renew() locks its rows: the two cannot deadlock.
    std::stable_sort(batch.updates.begin(), batch.updates.end(),
                     [](const DeliveryUpdate& a, const DeliveryUpdate& b) {
                         return a.delivery_id < b.delivery_id;
                     });
    bool sent = send(c, "BEGIN", Params{});
    for (size_t k = 0; sent && k < order.size(); ++k) {
        const NewEvent& e = *batch.inserts[order[k]]->event;
        ids[order[k]] = ids_.next(now);
        std::vector<std::string> plugins;
        std::vector<std::string_view> keys;
        for (const NewDelivery& d : e.deliveries) {
            plugins.emplace_back(d.plugin);
            keys.push_back(d.order_key);
        }
        Params p;
        p.text(e.source)
            .bytes(e.idempotency_key)
            .text(ids[order[k]])
            .i64(e.received_at_ms)
            .bytes(e.type)
            .bytes(e.body)
            .text_array(plugins)
            .text(bytea_array(keys));
        sent = send_prepared(c, "clayhook_insert", p);
    }
    for (size_t i = 0; sent && i < batch.updates.size(); ++i) {
        const DeliveryUpdate& u = batch.updates[i];
        Params p;
        p.i64(u.delivery_id)
            .i64(state_code(u.state))
            .i64(u.attempts)
            .i64(u.due_ms)
            .i64(u.finished_ms)
            .bytes(u.last_error)
            .text(owner_)
            .boolean(u.attempt.has_value());
        if (u.attempt) {
            p.i64(u.attempt->attempt)
                .i64(u.attempt->started_ms)
                .i64(u.attempt->duration_us)
                .text(u.attempt->outcome)
                .bytes(u.attempt->reason);
        } else {
            p.i64(0).i64(0).i64(0).text("").bytes("");
        }
        sent = send_prepared(c, "clayhook_result", p);
    }
    for (size_t i = 0; sent && i < batch.claims.size(); ++i) {
        const GroupCommit::Claim& cl = *batch.claims[i];
        std::vector<int64_t> v(cl.ids.begin(), cl.ids.end());
        sent = send_prepared(c, "clayhook_claim_lock", Params().i64_array(v));
        Params p;
        p.i64_array(v).text(owner_).i64(cl.lease_until_ms).i64(cl.now_ms);
        sent = sent && send_prepared(c, "clayhook_claim", p);
    }
    if (sent) sent = send(c, "COMMIT", Params{});
    if (sent) sent = PQpipelineSync(c) == 1;
    if (!sent) {
        error = error_of(c);
        PQfinish(wconn_);  // the pipeline is in an unknown state: start afresh
        wconn_ = nullptr;
        return false;
    }

    // Read every result, in the order sent, then the sync.
    const size_t statements = 2 + order.size() + batch.updates.size() + 2 * batch.claims.size();
    std::vector<Result> results;
    results.reserve(statements);
    bool broken = false;
    for (size_t i = 0; i < statements && !broken; ++i) {
        Result r(PQgetResult(c));
        if (!r) {
            broken = true;
            break;
        }
        // Each statement's result is followed by a null.
        while (PGresult* extra = PQgetResult(c))
            PQclear(extra);
        results.push_back(std::move(r));
    }
    if (!broken) {
        Result sync(PQgetResult(c));
        broken = !sync || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC;
    }
    if (broken || PQstatus(c) != CONNECTION_OK) {
        error = error_of(c);
        if (error.empty()) error = "the connection broke during the commit";
        PQfinish(wconn_);
        wconn_ = nullptr;
        return false;
    }
    bool failed = false;
    for (const Result& r : results) {
        if (!ok(r.get())) {
            // The first failure explains; the rest are PIPELINE_ABORTED.
            if (!failed && PQresultStatus(r.get()) != PGRES_PIPELINE_ABORTED)
                error = error_of(r.get(), c);
            failed = true;
        }
    }
    if (failed) {
        if (error.empty()) error = "the transaction was rolled back";
        // The failed statement left the session inside an aborted
        // transaction (our BEGIN): end it, or every later batch would fail.
        rollback_writer();
        return false;
    }

    // Committed. Inserts: a row (or rows, one per delivery) means stored.
    std::vector<size_t> duplicates;
    for (size_t k = 0; k < order.size(); ++k) {
        GroupCommit::Insert& in = *batch.inserts[order[k]];
        const NewEvent& e = *in.event;
        const PGresult* r = results[1 + k].get();
        if (PQntuples(r) == 0) {
            duplicates.push_back(order[k]);
            continue;
        }
        const int64_t seq = int_at(r, 0, 0);
        for (int row = 0; row < PQntuples(r); ++row) {
            if (PQgetisnull(r, row, 1)) continue;
            DeliveryRef ref;
            ref.id = int_at(r, row, 1);
            ref.event_seq = seq;
            ref.plugin = bytes_at(r, row, 2);
            for (const NewDelivery& d : e.deliveries)
                if (d.plugin == ref.plugin) ref.order_key = d.order_key;
            ref.due_ms = e.received_at_ms;
            ref.received_at_ms = e.received_at_ms;
            ref.age_from_ms = e.received_at_ms;
            new_deliveries_.push_back(std::move(ref));
        }
        in.result = {InsertStatus::stored, ids[order[k]], {}};
    }
    for (size_t i = 0; i < batch.claims.size(); ++i) {
        GroupCommit::Claim& cl = *batch.claims[i];
        const PGresult* r = results[1 + order.size() + batch.updates.size() + 2 * i + 1].get();
        cl.claimed.clear();
        for (int row = 0; row < PQntuples(r); ++row)
            cl.claimed.push_back({int_at(r, row, 0), static_cast<uint32_t>(int_at(r, row, 1)),
                                  static_cast<uint32_t>(int_at(r, row, 2))});
        std::sort(cl.claimed.begin(), cl.claimed.end(),
                  [](const ClaimedDelivery& a, const ClaimedDelivery& b) { return a.id < b.id; });
    }
    batch.updates.clear();
    std::sort(new_deliveries_.begin(), new_deliveries_.end(),
              [](const DeliveryRef& a, const DeliveryRef& b) { return a.id < b.id; });

    // Duplicates: the key was stored before (by this batch, another host, or
    // earlier). Its event's id, read after the commit so the other
    // transaction's row is visible.
    if (!duplicates.empty()) {
        bool looked = true;
        for (size_t i : duplicates) {
            const NewEvent& e = *batch.inserts[i]->event;
            looked = looked && send(c,
                                    "SELECT event_id FROM dedup WHERE source = $1::text"
                                    " AND idempotency_key = $2::bytea",
                                    Params().text(e.source).bytes(e.idempotency_key));
        }
        looked = looked && PQpipelineSync(c) == 1;
        for (size_t i : duplicates) {
            GroupCommit::Insert& in = *batch.inserts[i];
            Result r(looked ? PQgetResult(c) : nullptr);
            if (r) {
                while (PGresult* extra = PQgetResult(c))
                    PQclear(extra);
            }
            if (r && ok(r.get()) && PQntuples(r.get()) == 1) {
                in.result = {InsertStatus::duplicate, std::string(bytes_at(r.get(), 0, 0)), {}};
            } else {
                // Forgotten by a prune in between: the sender retries and
                // stores it then.
                in.result = {InsertStatus::unavailable,
                             {},
                             "duplicate of an event whose dedup record could not be read"};
                looked = looked && r != nullptr;
            }
        }
        if (looked) {
            Result sync(PQgetResult(c));
            if (!sync || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC) looked = false;
        }
        if (!looked) {
            PQfinish(wconn_);
            wconn_ = nullptr;
        }
    }
    if (!batch.inserts.empty() || !new_deliveries_.empty())
        notify_committed(batch.inserts.size(), new_deliveries_);
    new_deliveries_.clear();
    return true;
}

// Every reconnect_every while nothing is queued: notices a database that went
// away (for /readyz) and one that came back, without waiting for traffic.
void PgStore::idle() noexcept {
    bool ok_ = ensure_writer();
    if (ok_) {
        PGconn* c = wconn_;
        ok_ = send(c, "SELECT 1", Params{}) && PQpipelineSync(c) == 1;
        if (ok_) {
            Result r(PQgetResult(c));
            ok_ = r && PQresultStatus(r.get()) == PGRES_TUPLES_OK;
            while (PGresult* extra = PQgetResult(c))
                PQclear(extra);
            Result sync(ok_ ? PQgetResult(c) : nullptr);
            ok_ = ok_ && sync && PQresultStatus(sync.get()) == PGRES_PIPELINE_SYNC;
        }
        if (!ok_) {
            PQfinish(wconn_);
            wconn_ = nullptr;
        }
    }
    writable_.store(ok_, std::memory_order_relaxed);
}

// ---- Claims ----

std::vector<ClaimedDelivery> PgStore::claim(std::span<const int64_t> ids, int64_t lease_until_ms) {
    if (ids.empty()) return {};
    GroupCommit::Claim c;
    c.ids = ids;
    c.now_ms = now_ms();
    c.lease_until_ms = lease_until_ms;
    gc_->claim(c);
    if (c.failed) throw std::runtime_error("claim deliveries in " + name_ + ": " + c.error);
    return std::move(c.claimed);
}

size_t PgStore::renew(std::span<const int64_t> ids, int64_t lease_until_ms) {
    if (ids.empty()) return 0;
    return with_conn([&](PGconn* pc) -> size_t {
        std::vector<int64_t> v(ids.begin(), ids.end());
        Result r = exec(pc,
                        "UPDATE deliveries SET lease_until_ms = $2::bigint WHERE id IN"
                        " (SELECT id FROM deliveries WHERE id = ANY($1::bigint[]) AND state = 0"
                        " AND claimed_by = $3::text ORDER BY id FOR UPDATE)",
                        Params().i64_array(v).i64(lease_until_ms).text(owner_),
                        "renew delivery leases in " + name_);
        return static_cast<size_t>(std::stoull(PQcmdTuples(r.get())));
    });
}

std::vector<DeliveryRef> PgStore::claimable(std::span<const std::string> plugins,
                                            int64_t due_before_ms, size_t limit) {
    if (plugins.empty() || limit == 0) return {};
    static const std::string sql =
        std::string(kRefColumns) +
        " WHERE d.state = 0 AND d.plugin = ANY($1::text[]) AND d.due_ms <= $2::bigint"
        " AND d.lease_until_ms <= $3::bigint"
        " AND (d.order_key = ''::bytea OR NOT EXISTS (SELECT 1 FROM deliveries o"
        " WHERE o.plugin = d.plugin AND o.order_key = d.order_key AND o.state = 0"
        " AND o.id <> d.id AND (o.id < d.id OR o.lease_until_ms > $3::bigint)))"
        " ORDER BY d.due_ms, d.id LIMIT $4::bigint";
    return with_conn([&](PGconn* pc) -> std::vector<DeliveryRef> {
        Result r = exec(pc, sql.c_str(),
                        Params()
                            .text_array({plugins.begin(), plugins.end()})
                            .i64(due_before_ms)
                            .i64(now_ms())
                            .i64(static_cast<int64_t>(limit)),
                        "list claimable deliveries in " + name_);
        std::vector<DeliveryRef> out;
        for (int i = 0; i < PQntuples(r.get()); ++i)
            out.push_back(read_ref(r.get(), i));
        return out;
    });
}

// ---- Reads and control-plane writes ----

uint64_t PgStore::event_count() {
    return with_conn([&](PGconn* pc) -> uint64_t {
        Result r = exec(pc, "SELECT count(*) FROM events", "count events in " + name_);
        return static_cast<uint64_t>(int_at(r.get(), 0, 0));
    });
}

std::optional<StoredEvent> PgStore::get(std::string_view id) {
    static const std::string sql = std::string(kEventColumns) + " WHERE id = $1::text";
    return with_conn([&](PGconn* pc) -> std::optional<StoredEvent> {
        Result r = exec(pc, sql.c_str(), Params().text(id), "get event from " + name_);
        if (PQntuples(r.get()) == 0) return std::nullopt;
        return read_event(r.get(), 0);
    });
}

std::vector<StoredEvent> PgStore::events_by_seq(std::span<const int64_t> seqs) {
    static const std::string sql = std::string(kEventColumns) + " WHERE seq = ANY($1::bigint[])";
    if (seqs.empty()) return {};
    return with_conn([&](PGconn* pc) -> std::vector<StoredEvent> {
        Result r = exec(pc, sql.c_str(), Params().i64_array({seqs.begin(), seqs.end()}),
                        "load events from " + name_);
        std::vector<StoredEvent> out;
        for (int i = 0; i < PQntuples(r.get()); ++i)
            out.push_back(read_event(r.get(), i));
        return out;
    });
}

size_t PgStore::prune_dedup(std::chrono::system_clock::time_point older_than) {
    const int64_t cutoff =
        std::chrono::duration_cast<std::chrono::milliseconds>(older_than.time_since_epoch())
            .count();
    size_t total = 0;
    for (;;) {
        // One small statement per chunk: the intake's inserts never wait long.
        const size_t n = with_conn([&](PGconn* pc) {
            Result r = exec(pc,
                            "DELETE FROM dedup WHERE ctid = ANY(ARRAY(SELECT ctid FROM dedup"
                            " WHERE first_seen_ms < $1::bigint LIMIT $2::bigint))",
                            Params().i64(cutoff).i64(static_cast<int64_t>(tuning_.prune_chunk)),
                            "prune dedup records in " + name_);
            return static_cast<size_t>(std::stoull(PQcmdTuples(r.get())));
        });
        total += n;
        if (n < tuning_.prune_chunk) return total;
    }
}

PurgeCounts PgStore::purge_history(int64_t before_ms, int64_t dead_before_ms,
                                   std::stop_token stop) {
    // One statement per chunk of the oldest events (by seq, the primary key:
    // no index on received_at_ms needed), each its own transaction: the rows
    // it deletes are locked only for that long, and autovacuum reclaims them
    // behind it. An event another transaction holds (a claim, a result on
    // one of its deliveries) is skipped and taken by a later pass.
    static const char* sql =
        "WITH cand AS (SELECT seq, received_at_ms FROM events WHERE seq > $1::bigint"
        " ORDER BY seq LIMIT $2::bigint),"
        " victims AS (SELECT e.seq, c.received_at_ms FROM events e JOIN cand c ON c.seq = e.seq"
        " WHERE c.received_at_ms < $3::bigint AND NOT EXISTS (SELECT 1 FROM deliveries d"
        " WHERE d.event_seq = e.seq AND (d.state = 0 OR (d.state = 2 AND"
        " c.received_at_ms >= $4::bigint))) FOR UPDATE OF e SKIP LOCKED),"
        // The conditions again on the delete: a delivery that a replay made
        // pending since the snapshot is re-read once its lock is released
        // and kept, and so is its event (not every delivery went).
        " dd AS (DELETE FROM deliveries d USING victims v WHERE d.event_seq = v.seq"
        " AND d.state <> 0 AND NOT (d.state = 2 AND v.received_at_ms >= $4::bigint)"
        " RETURNING d.id, d.event_seq),"
        " da AS (DELETE FROM attempts a USING dd WHERE a.delivery_id = dd.id RETURNING 1),"
        " de AS (DELETE FROM events e USING victims v WHERE e.seq = v.seq"
        " AND (SELECT count(*) FROM dd WHERE dd.event_seq = v.seq) ="
        " (SELECT count(*) FROM deliveries d2 WHERE d2.event_seq = v.seq) RETURNING 1)"
        " SELECT (SELECT count(*) FROM cand), coalesce((SELECT max(seq) FROM cand), 0),"
        " coalesce((SELECT received_at_ms FROM cand ORDER BY seq DESC LIMIT 1), 0),"
        " (SELECT count(*) FROM de), (SELECT count(*) FROM dd), (SELECT count(*) FROM da)";
    PurgeCounts total;
    int64_t from = 0;
    while (!stop.stop_requested()) {
        const auto [rows, last_received] = with_conn([&](PGconn* pc) {
            Result r = exec(pc, sql,
                            Params()
                                .i64(from)
                                .i64(static_cast<int64_t>(tuning_.purge_chunk))
                                .i64(before_ms)
                                .i64(dead_before_ms),
                            "delete old events in " + name_);
            from = int_at(r.get(), 0, 1);
            total.events += static_cast<size_t>(int_at(r.get(), 0, 3));
            total.deliveries += static_cast<size_t>(int_at(r.get(), 0, 4));
            total.attempts += static_cast<size_t>(int_at(r.get(), 0, 5));
            return std::pair{static_cast<size_t>(int_at(r.get(), 0, 0)), int_at(r.get(), 0, 2)};
        });
        if (rows < tuning_.purge_chunk || last_received >= before_ms) break;
    }
    return total;
}

void PgStore::load_pending(const std::function<void(DeliveryRef&&)>& fn, std::string_view plugin) {
    static const std::string sql = std::string(kRefColumns) +
                                   " WHERE d.state = 0 AND ($1::text = '' OR d.plugin = $1::text)"
                                   " AND d.id > $2::bigint ORDER BY d.id LIMIT 10000";
    // In pages by id, so a large backlog never sits in one result.
    int64_t after = 0;
    for (;;) {
        std::vector<DeliveryRef> page;
        with_conn([&](PGconn* pc) {
            page.clear();
            Result r = exec(pc, sql.c_str(), Params().text(plugin).i64(after),
                            "load pending deliveries from " + name_);
            for (int i = 0; i < PQntuples(r.get()); ++i)
                page.push_back(read_ref(r.get(), i));
        });
        if (page.empty()) return;
        after = page.back().id;
        const bool last = page.size() < 10000;
        for (auto& ref : page)
            fn(std::move(ref));
        if (last) return;
    }
}

std::optional<Store::Scheduled> PgStore::schedule_again(std::string_view event_id,
                                                        std::string_view plugin, int64_t at_ms,
                                                        std::span<const int64_t> busy) {
    std::optional<Scheduled> out;
    txn("schedule a delivery", [&](PGconn* c) {
        out.reset();
        // FOR SHARE: retention cannot delete the event under the delivery
        // made here (it skips a locked event; one it holds is gone after).
        Result ev = exec(c, "SELECT seq, received_at_ms FROM events WHERE id = $1::text FOR SHARE",
                         Params().text(event_id), "find the event");
        if (PQntuples(ev.get()) == 0) return;
        Scheduled sch;
        DeliveryRef& ref = sch.ref;
        ref.event_seq = int_at(ev.get(), 0, 0);
        ref.received_at_ms = int_at(ev.get(), 0, 1);
        ref.plugin = plugin;
        ref.due_ms = at_ms;
        ref.age_from_ms = at_ms;
        // One pending scheduled delivery per (event, plugin), not counting
        // the ones being handled here or under another host's lease.
        Result pending = exec(c,
                              "SELECT id FROM deliveries WHERE event_seq = $1::bigint"
                              " AND plugin = $2::text AND scheduled AND state = 0"
                              " AND lease_until_ms <= $3::bigint ORDER BY id"
                              " FOR UPDATE SKIP LOCKED",
                              Params().i64(ref.event_seq).text(plugin).i64(now_ms()),
                              "find a scheduled delivery");
        for (int i = 0; i < PQntuples(pending.get()); ++i) {
            int64_t id = int_at(pending.get(), i, 0);
            if (std::find(busy.begin(), busy.end(), id) != busy.end()) continue;
            ref.id = id;
            break;
        }
        if (ref.id != 0) {
            exec(c,
                 "UPDATE deliveries SET due_ms = $2::bigint, age_from_ms = $2::bigint,"
                 " attempts = 0 WHERE id = $1::bigint",
                 Params().i64(ref.id).i64(at_ms), "move a scheduled delivery");
            out = std::move(sch);
            return;
        }
        Result ins = exec(c,
                          "INSERT INTO deliveries(event_seq, plugin, state, due_ms, attempts,"
                          " scheduled, age_from_ms, finished_ms, order_key, last_error)"
                          " VALUES($1::bigint, $2::text, 0, $3::bigint, 0, true, $3::bigint, 0,"
                          " ''::bytea, ''::bytea) RETURNING id",
                          Params().i64(ref.event_seq).text(plugin).i64(at_ms),
                          "insert a scheduled delivery");
        ref.id = int_at(ins.get(), 0, 0);
        sch.created = true;
        out = std::move(sch);
    });
    return out;
}

std::vector<DeliveryRef> PgStore::replay(std::span<const int64_t> delivery_ids) {
    std::vector<DeliveryRef> out;
    const int64_t now = now_ms();
    constexpr size_t kChunk = 500;
    static const std::string sql =
        "WITH u AS (UPDATE deliveries SET state = 0, attempts = 0, lost_attempts = 0,"
        " due_ms = $2::bigint, age_from_ms = $2::bigint, finished_ms = 0, lease_until_ms = 0"
        " WHERE id = ANY($1::bigint[]) AND state = 2 RETURNING id, event_seq, plugin, due_ms,"
        " attempts, order_key, age_from_ms)"
        " SELECT u.id, u.event_seq, u.plugin, u.due_ms, u.attempts, e.received_at_ms,"
        " u.order_key, u.age_from_ms FROM u JOIN events e ON e.seq = u.event_seq ORDER BY u.id";
    for (size_t from = 0; from < delivery_ids.size(); from += kChunk) {
        auto chunk = delivery_ids.subspan(from, std::min(kChunk, delivery_ids.size() - from));
        std::vector<DeliveryRef> got;
        txn("replay deliveries", [&](PGconn* c) {
            got.clear();
            Result r =
                exec(c, sql.c_str(), Params().i64_array({chunk.begin(), chunk.end()}).i64(now),
                     "replay deliveries");
            for (int i = 0; i < PQntuples(r.get()); ++i)
                got.push_back(read_ref(r.get(), i));
        });
        for (auto& r : got)
            out.push_back(std::move(r));
    }
    return out;
}

Store::Usage PgStore::usage() noexcept {
    Usage u;
    try {
        u.bytes = with_conn([&](PGconn* pc) -> int64_t {
            Result r = exec(pc, "SELECT pg_database_size(current_database())", Params{},
                            "read the database size of " + name_);
            return int_at(r.get(), 0, 0);
        });
        // min(id) walks deliveries_pending (partial: pending rows only).
        u.oldest_pending_ms = with_conn([&](PGconn* pc) -> int64_t {
            Result r = exec(pc,
                            "SELECT coalesce((SELECT greatest(e.received_at_ms, 1) FROM events e"
                            " WHERE e.seq = (SELECT event_seq FROM deliveries WHERE id ="
                            " (SELECT min(id) FROM deliveries WHERE state = 0))), 0)",
                            Params{}, "find the oldest pending delivery in " + name_);
            return int_at(r.get(), 0, 0);
        });
    } catch (const std::exception&) {
        // Unknown while the database is away: /metrics leaves it out.
    }
    return u;
}

std::vector<int64_t> PgStore::kill_pending(const KillFilter& f, const std::string& reason) {
    if (!f.any()) throw std::invalid_argument("kill_pending: no filter given");
    // Chunks of 500 in transactions of their own, like replay. A delivery
    // whose row another transaction holds right now (a claim, a result) is
    // waited for, not skipped: the operator asked for all of them.
    static const std::string sql =
        "WITH k AS (SELECT d.id FROM deliveries d JOIN events e ON e.seq = d.event_seq"
        " WHERE d.state = 0 AND d.id > $1::bigint"
        " AND (cardinality($2::bigint[]) = 0 OR d.id = ANY($2::bigint[]))"
        " AND ($3::text = '' OR d.plugin = $3::text) AND ($4::text = '' OR e.id = $4::text)"
        " ORDER BY d.id LIMIT 500 FOR UPDATE OF d)"
        " UPDATE deliveries t SET state = 2, finished_ms = $5::bigint, last_error = $6::bytea,"
        " lease_until_ms = 0 FROM k WHERE t.id = k.id AND t.state = 0 RETURNING t.id";
    std::vector<int64_t> out;
    int64_t after = 0;
    for (;;) {
        std::vector<int64_t> got;
        txn("mark deliveries dead", [&](PGconn* c) {
            got.clear();
            Result r = exec(c, sql.c_str(),
                            Params()
                                .i64(after)
                                .i64_array(f.ids)
                                .text(f.plugin)
                                .text(f.event_id)
                                .i64(now_ms())
                                .bytes(reason),
                            "mark deliveries dead in " + name_);
            for (int i = 0; i < PQntuples(r.get()); ++i)
                got.push_back(int_at(r.get(), i, 0));
        });
        std::sort(got.begin(), got.end());
        out.insert(out.end(), got.begin(), got.end());
        if (got.size() < 500) break;
        after = got.back();
    }
    return out;
}

void PgStore::settle_crash(const std::string& owner, std::span<const int64_t> guilty,
                           const std::string& reason) {
    std::vector<int64_t> g(guilty.begin(), guilty.end());
    txn("settle a crash", [&](PGconn* c) {
        // The guilty keep a marker (an ended, non-zero lease) that their next
        // claim counts as lost; the bystanders are forgiven (0). The lease
        // itself ends now either way: the process that held it is dead.
        exec(c,
             "UPDATE deliveries SET lease_until_ms = CASE WHEN id = ANY($2::bigint[]) THEN 1"
             " ELSE 0 END, last_error = CASE WHEN id = ANY($2::bigint[]) THEN $3::bytea"
             " ELSE last_error END, claimed_by = CASE WHEN id = ANY($2::bigint[]) THEN claimed_by"
             " ELSE '' END"
             " WHERE id IN (SELECT id FROM deliveries WHERE state = 0 AND claimed_by = $1::text"
             " AND lease_until_ms <> 0 ORDER BY id FOR UPDATE)",
             Params().text(owner).i64_array(g).bytes(reason), "settle a crash in " + name_);
    });
}

std::vector<int64_t> PgStore::dead_ids(std::string_view plugin, size_t limit) {
    return with_conn([&](PGconn* pc) -> std::vector<int64_t> {
        Result r = exec(pc,
                        "SELECT id FROM deliveries WHERE state = 2"
                        " AND ($1::text = '' OR plugin = $1::text) ORDER BY id LIMIT $2::bigint",
                        Params().text(plugin).i64(static_cast<int64_t>(limit)),
                        "list dead deliveries in " + name_);
        std::vector<int64_t> out;
        for (int i = 0; i < PQntuples(r.get()); ++i)
            out.push_back(int_at(r.get(), i, 0));
        return out;
    });
}

std::optional<std::string> PgStore::kv_get(std::string_view plugin, std::string_view key) {
    return with_conn([&](PGconn* pc) -> std::optional<std::string> {
        Result r = exec(pc, "SELECT value FROM kv WHERE plugin = $1::text AND key = $2::bytea",
                        Params().text(plugin).bytes(key), "read a plugin value from " + name_);
        if (PQntuples(r.get()) == 0) return std::nullopt;
        return std::string(bytes_at(r.get(), 0, 0));
    });
}

void PgStore::kv_put(std::string_view plugin, std::string_view key, std::string_view value) {
    return with_conn([&](PGconn* pc) -> void {
        exec(pc,
             "INSERT INTO kv(plugin, key, value) VALUES($1::text, $2::bytea, $3::bytea)"
             " ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value",
             Params().text(plugin).bytes(key).bytes(value), "store a plugin value in " + name_);
    });
}

bool PgStore::kv_delete(std::string_view plugin, std::string_view key) {
    return with_conn([&](PGconn* pc) -> bool {
        Result r = exec(pc, "DELETE FROM kv WHERE plugin = $1::text AND key = $2::bytea",
                        Params().text(plugin).bytes(key), "delete a plugin value in " + name_);
        return std::string_view(PQcmdTuples(r.get())) != "0";
    });
}

std::set<std::string> PgStore::paused_plugins() {
    return with_conn([&](PGconn* pc) -> std::set<std::string> {
        Result r = exec(pc, "SELECT plugin FROM plugin_state WHERE paused",
                        "read paused plugins from " + name_);
        std::set<std::string> out;
        for (int i = 0; i < PQntuples(r.get()); ++i)
            out.emplace(bytes_at(r.get(), i, 0));
        return out;
    });
}

void PgStore::set_paused(std::string_view plugin, bool paused) {
    return with_conn([&](PGconn* pc) -> void {
        exec(pc,
             "INSERT INTO plugin_state(plugin, paused) VALUES($1::text, $2::boolean)"
             " ON CONFLICT (plugin) DO UPDATE SET paused = excluded.paused",
             Params().text(plugin).boolean(paused), "store the paused flag in " + name_);
    });
}

std::vector<EventSummary> PgStore::list_events(const EventFilter& f) {
    const auto [compact, spaced] = row_id_patterns(f.row_id);
    return with_conn([&](PGconn* pc) -> std::vector<EventSummary> {
        Result r = exec(
            pc,
            "SELECT e.id, e.source, e.type, e.idempotency_key, e.received_at_ms,"
            " (SELECT count(*) FROM deliveries d WHERE d.event_seq = e.seq AND d.state = 0),"
            " (SELECT count(*) FROM deliveries d WHERE d.event_seq = e.seq AND d.state = 1),"
            " (SELECT count(*) FROM deliveries d WHERE d.event_seq = e.seq AND d.state = 2)"
            " FROM events e"
            " WHERE ($1::bytea = ''::bytea OR e.type = $1::bytea)"
            " AND ($2::bigint = 0 OR e.received_at_ms >= $2::bigint)"
            " AND ($3::bigint = 0 OR e.received_at_ms < $3::bigint)"
            " AND ($4::integer < 0 OR EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq"
            " AND d.state = $4::integer))"
            " AND ($5::text = '' OR e.id < $5::text)"
            " AND ($7::bytea = ''::bytea OR position($7::bytea in e.body) > 0"
            " OR position($8::bytea in e.body) > 0)"
            " ORDER BY e.id DESC LIMIT $6::bigint",
            Params()
                .bytes(f.type)
                .i64(f.since_ms)
                .i64(f.until_ms)
                .i64(f.status ? state_code(*f.status) : -1)
                .text(f.before_id)
                .i64(static_cast<int64_t>(f.limit))
                .bytes(compact)
                .bytes(spaced),
            "list events in " + name_);
        std::vector<EventSummary> out;
        for (int i = 0; i < PQntuples(r.get()); ++i) {
            EventSummary e;
            e.id = bytes_at(r.get(), i, 0);
            e.source = bytes_at(r.get(), i, 1);
            e.type = bytes_at(r.get(), i, 2);
            e.key = bytes_at(r.get(), i, 3);
            e.received_at_ms = int_at(r.get(), i, 4);
            e.pending = int_at(r.get(), i, 5);
            e.done = int_at(r.get(), i, 6);
            e.dead = int_at(r.get(), i, 7);
            out.push_back(std::move(e));
        }
        return out;
    });
}

std::vector<DeliveryInfo> PgStore::event_deliveries(std::string_view event_id) {
    static const std::string sql =
        std::string(kInfoColumns) + " WHERE e.id = $1::text ORDER BY d.id";
    std::vector<DeliveryInfo> out;
    // One snapshot for the deliveries and their attempts.
    txn("read an event's deliveries", [&](PGconn* c) {
        out.clear();
        exec(c, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY", "snapshot");
        Result r = exec(c, sql.c_str(), Params().text(event_id), "read an event's deliveries");
        for (int i = 0; i < PQntuples(r.get()); ++i)
            out.push_back(read_info(r.get(), i));
        for (auto& d : out) {
            Result a = exec(c,
                            "SELECT attempt, started_ms, duration_us, outcome, reason FROM attempts"
                            " WHERE delivery_id = $1::bigint ORDER BY id",
                            Params().i64(d.id), "read attempts");
            for (int i = 0; i < PQntuples(a.get()); ++i) {
                AttemptRecord rec;
                rec.attempt = static_cast<uint32_t>(int_at(a.get(), i, 0));
                rec.started_ms = int_at(a.get(), i, 1);
                rec.duration_us = int_at(a.get(), i, 2);
                rec.outcome = bytes_at(a.get(), i, 3);
                rec.reason = bytes_at(a.get(), i, 4);
                d.history.push_back(std::move(rec));
            }
        }
    });
    return out;
}

std::vector<DeliveryInfo> PgStore::list_deliveries(const DeliveryFilter& f) {
    const std::string last_error = f.last_error.value_or("");
    static const std::string sql =
        std::string(kInfoColumns) +
        " WHERE ($1::integer < 0 OR d.state = $1::integer) AND ($2::text = '' OR d.plugin = "
        "$2::text) AND ($3::bigint = 0 OR d.id < $3::bigint)"
        " AND ($5::integer = 0 OR d.last_error = $6::bytea) ORDER BY d.id DESC LIMIT $4::bigint";
    return with_conn([&](PGconn* pc) -> std::vector<DeliveryInfo> {
        Result r = exec(pc, sql.c_str(),
                        Params()
                            .i64(f.state ? state_code(*f.state) : -1)
                            .text(f.plugin)
                            .i64(f.before_id)
                            .i64(static_cast<int64_t>(f.limit))
                            .i64(f.last_error ? 1 : 0)
                            .bytes(last_error),
                        "list deliveries in " + name_);
        std::vector<DeliveryInfo> out;
        for (int i = 0; i < PQntuples(r.get()); ++i)
            out.push_back(read_info(r.get(), i));
        return out;
    });
}

std::vector<std::pair<std::string, std::array<int64_t, 3>>> PgStore::delivery_counts() {
    return with_conn(
        [&](PGconn* pc) -> std::vector<std::pair<std::string, std::array<int64_t, 3>>> {
            Result r = exec(pc,
                            "SELECT plugin, state, count(*) FROM deliveries GROUP BY plugin, state"
                            " ORDER BY plugin",
                            "count deliveries in " + name_);
            std::vector<std::pair<std::string, std::array<int64_t, 3>>> out;
            for (int i = 0; i < PQntuples(r.get()); ++i) {
                std::string plugin(bytes_at(r.get(), i, 0));
                const int64_t state = int_at(r.get(), i, 1);
                if (out.empty() || out.back().first != plugin) out.push_back({plugin, {0, 0, 0}});
                if (state >= 0 && state < 3)
                    out.back().second[static_cast<size_t>(state)] = int_at(r.get(), i, 2);
            }
            return out;
        });
}

std::vector<DeadLetterGroup> PgStore::dead_letter_groups(size_t limit) {
    return with_conn([&](PGconn* pc) -> std::vector<DeadLetterGroup> {
        Result r =
            exec(pc,
                 "SELECT plugin, last_error, count(*), min(finished_ms), max(finished_ms)"
                 " FROM deliveries WHERE state = 2 GROUP BY plugin, last_error"
                 " ORDER BY 3 DESC, 1 LIMIT $1::bigint",
                 Params().i64(static_cast<int64_t>(limit)), "group dead deliveries in " + name_);
        std::vector<DeadLetterGroup> out;
        for (int i = 0; i < PQntuples(r.get()); ++i)
            out.push_back({std::string(bytes_at(r.get(), i, 0)),
                           std::string(bytes_at(r.get(), i, 1)), int_at(r.get(), i, 2),
                           int_at(r.get(), i, 3), int_at(r.get(), i, 4)});
        return out;
    });
}

size_t PgStore::discard_dead(std::span<const int64_t> delivery_ids) {
    size_t total = 0;
    constexpr size_t kChunk = 500;
    for (size_t from = 0; from < delivery_ids.size(); from += kChunk) {
        auto chunk = delivery_ids.subspan(from, std::min(kChunk, delivery_ids.size() - from));
        total += with_conn([&](PGconn* pc) {
            Result r = exec(pc,
                            "WITH gone AS (DELETE FROM deliveries WHERE id = ANY($1::bigint[])"
                            " AND state = 2 RETURNING id),"
                            " a AS (DELETE FROM attempts WHERE delivery_id IN"
                            " (SELECT id FROM gone)) SELECT count(*) FROM gone",
                            Params().i64_array({chunk.begin(), chunk.end()}),
                            "discard dead deliveries in " + name_);
            return static_cast<size_t>(int_at(r.get(), 0, 0));
        });
    }
    return total;
}

}  // namespace clayhook
