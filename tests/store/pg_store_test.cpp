// What only the PostgreSQL engine does: migrations several hosts apply at
// once, leases between hosts, ordering across hosts, a server that goes away
// and comes back, TLS, and a URL that never shows its password. The contract
// both engines keep is in store_contract_test.cpp.

#include "store/PgStore.h"
#include "store/PgTestConfig.h"
#include "support/PgServer.h"
#include "support/TestPki.h"
#include "support/Wait.h"

#include <libpq-fe.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>

using namespace clayhook;
using clayhook::test::pg_config;

namespace {

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

NewEvent event(std::string_view key, std::span<const NewDelivery> deliveries = {}) {
    NewEvent e{"clay", "enrichment.completed", key, "{}", now_ms()};
    e.deliveries = deliveries;
    return e;
}

// A done result for `id` at its `attempts`th attempt.
DeliveryUpdate done_result(int64_t id, uint32_t attempts) {
    DeliveryUpdate u;
    u.delivery_id = id;
    u.state = DeliveryState::done;
    u.attempts = attempts;
    return u;
}

// Records a done result on `store` and waits until it is committed.
void finish(Store& store, int64_t id, uint32_t attempts) {
    store.record({done_result(id, attempts)});
    store.flush();
}

struct Refs final : CommitListener {
    explicit Refs(Store& s) : store(s) { store.subscribe(this); }
    ~Refs() override { store.unsubscribe(this); }
    void committed(size_t, std::vector<DeliveryRef>& d) noexcept override {
        std::lock_guard lk(mu);
        for (auto& r : d)
            refs.push_back(r);
    }
    Store& store;
    std::mutex mu;
    std::vector<DeliveryRef> refs;
};

}  // namespace

TEST_CASE("postgres: hosts starting at once apply each migration exactly once", "[store][pg]") {
    auto& server = test::shared_pg_server();
    const std::string url = server.create_database();
    constexpr int kHosts = 4;
    std::vector<std::thread> threads;
    std::atomic<int> opened{0};
    std::vector<std::string> errors(kHosts);
    for (int i = 0; i < kHosts; ++i)
        threads.emplace_back([&, i] {
            try {
                PgStore s(pg_config(url, "host-" + std::to_string(i)), 16);
                CHECK(s.schema_version() == PgStore::known_schema_version());
                opened.fetch_add(1);
            } catch (const std::exception& e) {
                errors[i] = e.what();
            }
        });
    for (auto& t : threads)
        t.join();
    for (const auto& e : errors)
        CHECK(e.empty());
    CHECK(opened.load() == kHosts);
    CHECK(server.query(url, "SELECT count(*) FROM clayhook_schema") ==
          std::to_string(PgStore::known_schema_version()));

    // A database migrated by a newer clayhook is refused, not misread.
    server.query(url, "INSERT INTO clayhook_schema VALUES (99, 0, 'the future')");
    CHECK_THROWS_WITH(PgStore(pg_config(url), 16),
                      Catch::Contains("schema version 99") && Catch::Contains("newer"));
}

TEST_CASE("postgres: a lease keeps a delivery one host's until it runs out", "[store][pg]") {
    auto& server = test::shared_pg_server();
    const std::string url = server.create_database();
    PgStore a(pg_config(url, "host-a"), 16);
    PgStore b(pg_config(url, "host-b"), 16);
    CHECK(a.owner() == "host-a");
    CHECK(a.shared());

    NewDelivery nd{"sink", ""};
    Refs refs(a);
    REQUIRE(a.insert(event("k", std::span(&nd, 1))).status == InsertStatus::stored);
    REQUIRE(refs.refs.size() == 1);
    const int64_t id = refs.refs[0].id;
    const int64_t ids[] = {id};
    const std::vector<std::string> sink = {"sink"};

    // A holds it: B neither claims it nor sees it as claimable.
    auto ca = a.claim(ids, now_ms() + 400);
    REQUIRE(ca.size() == 1);
    CHECK(ca[0].attempts == 1);
    CHECK(b.claim(ids, now_ms() + 30'000).empty());
    CHECK(b.claimable(sink, now_ms(), 10).empty());
    CHECK(b.renew(ids, now_ms() + 30'000) == 0);
    CHECK(a.renew(ids, now_ms() + 400) == 1);

    // A stops renewing (it died): once the lease ran out, B takes it, and
    // the attempt A never reported stays counted.
    REQUIRE(test::wait_until([&] { return !b.claimable(sink, now_ms(), 10).empty(); },
                             std::chrono::seconds(10)));
    auto cb = b.claim(ids, now_ms() + 30'000);
    REQUIRE(cb.size() == 1);
    CHECK(cb[0].attempts == 2);
    CHECK(server.query(url, "SELECT claimed_by FROM deliveries WHERE id = " + std::to_string(id)) ==
          "host-b");

    // A's late result is dropped; B's counts.
    DeliveryUpdate late;
    late.delivery_id = id;
    late.state = DeliveryState::dead;
    late.attempts = 1;
    late.last_error = "late";
    late.attempt = AttemptRecord{1, now_ms(), 1, "fail", "late"};
    a.record({late});
    a.flush();
    CHECK(server.query(url, "SELECT state FROM deliveries WHERE id = " + std::to_string(id)) ==
          "0");
    CHECK(server.query(url, "SELECT count(*) FROM attempts") == "0");
    finish(b, id, 2);
    CHECK(server.query(url, "SELECT state, attempts, lease_until_ms FROM deliveries WHERE id = " +
                                std::to_string(id)) == "1|2|0");
}

TEST_CASE("postgres: one ordering key is never claimed by two hosts at once", "[store][pg]") {
    auto& server = test::shared_pg_server();
    const std::string url = server.create_database();
    PgStore a(pg_config(url, "host-a"), 16);
    PgStore b(pg_config(url, "host-b"), 16);
    NewDelivery nd{"crm", "row-1"};
    Refs refs(a);
    REQUIRE(a.insert(event("first", std::span(&nd, 1))).status == InsertStatus::stored);
    REQUIRE(a.insert(event("second", std::span(&nd, 1))).status == InsertStatus::stored);
    REQUIRE(refs.refs.size() == 2);
    const int64_t first[] = {refs.refs[0].id}, second[] = {refs.refs[1].id};
    const std::vector<std::string> crm = {"crm"};

    // The second waits behind the first, pending anywhere.
    auto listed = b.claimable(crm, now_ms(), 10);
    REQUIRE(listed.size() == 1);
    CHECK(listed[0].id == first[0]);
    CHECK(b.claim(second, now_ms() + 30'000).empty());
    REQUIRE(a.claim(first, now_ms() + 30'000).size() == 1);
    CHECK(b.claim(second, now_ms() + 30'000).empty());
    CHECK(b.claimable(crm, now_ms(), 10).empty());
    // A retry of the first keeps the key: still pending.
    DeliveryUpdate retry;
    retry.delivery_id = first[0];
    retry.state = DeliveryState::pending;
    retry.attempts = 1;
    retry.due_ms = now_ms();
    a.record({retry});
    a.flush();
    CHECK(b.claim(second, now_ms() + 30'000).empty());
    // Done: the key moves on.
    REQUIRE(a.claim(first, now_ms() + 30'000).size() == 1);
    finish(a, first[0], 2);
    CHECK(b.claim(second, now_ms() + 30'000).size() == 1);
}

TEST_CASE("postgres: a server that goes away gives unavailable and unready, it recovers alone",
          "[store][pg]") {
    test::PgServer server;  // its own: this one is stopped
    const std::string url = server.create_database();
    PgStore::Tuning tuning;
    tuning.reconnect_every = std::chrono::milliseconds(100);
    PgStore store(pg_config(url), 16, tuning);
    auto first = store.insert(event("before"));
    REQUIRE(first.status == InsertStatus::stored);

    server.stop();
    auto during = store.insert(event("during"));
    CHECK(during.status == InsertStatus::unavailable);
    CHECK_FALSE(during.error.empty());
    CHECK(during.error.find("password") == std::string::npos);
    CHECK_FALSE(store.writable());

    server.start();
    // Ready again without any traffic (the writer's idle check).
    REQUIRE(test::wait_until([&] { return store.writable(); }, std::chrono::seconds(15)));
    CHECK(store.insert(event("during")).status == InsertStatus::stored);
    CHECK(store.insert(event("before")).status == InsertStatus::duplicate);
    CHECK(store.event_count() == 2);

    // Killed outright (a crash of the database): the same.
    server.kill9();
    REQUIRE(test::wait_until([&] { return !store.writable(); }, std::chrono::seconds(15)));
    CHECK(store.insert(event("crash")).status == InsertStatus::unavailable);
    server.start();
    REQUIRE(test::wait_until([&] { return store.writable(); }, std::chrono::seconds(30)));
    CHECK(store.insert(event("crash")).status == InsertStatus::stored);
    CHECK(store.event_count() == 3);
}

TEST_CASE("postgres: a full queue answers overloaded at once, what was queued commits",
          "[store][pg]") {
    auto& server = test::shared_pg_server();
    PgStore store(pg_config(server.create_database()), 2);
    store.hold_writer(true);
    std::vector<InsertResult> queued(2);
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i)
        threads.emplace_back([&, i] { queued[i] = store.insert(event("q" + std::to_string(i))); });
    REQUIRE(test::wait_until([&] { return store.queue_depth() == 2; }));
    auto over = store.insert(event("over"));
    CHECK(over.status == InsertStatus::overloaded);
    store.hold_writer(false);
    for (auto& t : threads)
        t.join();
    CHECK(queued[0].status == InsertStatus::stored);
    CHECK(queued[1].status == InsertStatus::stored);
}

TEST_CASE("postgres: errors name the server, never the password", "[store][pg]") {
    // Nothing listens on port 1.
    StoreConfig c = pg_config("postgresql://clay:SuperSecret-42@127.0.0.1:1/clayhook");
    c.postgres_connect_timeout = std::chrono::seconds(1);
    try {
        open_store(c, 16);
        FAIL("opened a store on a closed port");
    } catch (const std::exception& e) {
        const std::string m = e.what();
        CHECK(m.find("SuperSecret-42") == std::string::npos);
        CHECK(m.find("postgresql://clay@127.0.0.1:1/clayhook") != std::string::npos);
    }
    // A string libpq cannot parse is not echoed either.
    c = pg_config("host=127.0.0.1 password=SuperSecret-42 bogus");
    CHECK_THROWS_WITH(open_store(c, 16), !Catch::Contains("SuperSecret-42") &&
                                             Catch::Contains("not a valid PostgreSQL URL"));
}

TEST_CASE("postgres: TLS with the CA verified (sslmode=verify-full)", "[store][pg]") {
    const auto& pki = test::TestPki::shared();
    test::PgServer::Options o;
    o.ssl_cert_file = pki.good_cert;
    o.ssl_key_file = pki.good_key;
    test::PgServer server(o);
    const std::string db = server.create_database();
    const std::string name = db.substr(db.rfind('/') + 1);
    // The certificate names localhost and 127.0.0.1.
    PgStore store(pg_config(server.url(name, "sslmode=verify-full&sslrootcert=" + pki.ca)), 16);
    REQUIRE(store.insert(event("tls")).status == InsertStatus::stored);
    CHECK(server.query(db, "SELECT count(*) FROM pg_stat_ssl WHERE ssl") != "0");
    // Another CA's view of it: refused, and said why.
    test::TestPki other;
    CHECK_THROWS_WITH(
        PgStore(pg_config(server.url(name, "sslmode=verify-full&sslrootcert=" + other.ca)), 16),
        Catch::Contains("certificate"));
}

TEST_CASE("postgres: a role without CREATE serves a database that is up to date", "[store][pg]") {
    auto& server = test::shared_pg_server();
    const std::string url = server.create_database();
    { PgStore first(pg_config(url), 16); }  // the owner migrates it
    server.query(url,
                 "DO $$ BEGIN CREATE ROLE clayhook_rw LOGIN; EXCEPTION WHEN duplicate_object"
                 " THEN NULL; END $$;"
                 "GRANT USAGE ON SCHEMA public TO clayhook_rw;"
                 "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public"
                 " TO clayhook_rw;"
                 "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO clayhook_rw;");
    CHECK(server.query(url, "SELECT has_schema_privilege('clayhook_rw', 'public', 'CREATE')") ==
          "f");
    const std::string db = url.substr(url.rfind('/') + 1);
    const std::string as_rw =
        "postgresql://clayhook_rw@127.0.0.1:" + std::to_string(server.port()) + "/" + db;
    PgStore store(pg_config(as_rw), 16);
    CHECK(store.insert(event("limited")).status == InsertStatus::stored);
    CHECK(store.event_count() == 1);
}

TEST_CASE("postgres: a failed statement does not leave the writer stuck, nor log a row",
          "[store][pg]") {
    auto& server = test::shared_pg_server();
    const std::string url = server.create_database();
    PgStore store(pg_config(url), 16);
    REQUIRE(store.insert(event("first")).status == InsertStatus::stored);
    // A constraint the next event breaks: its batch fails on the server.
    server.query(url, "ALTER TABLE events ADD CONSTRAINT no_poison CHECK (body <> 'poison')");
    NewEvent poison{"clay", "enrichment.completed", "poison-key", "poison", now_ms()};
    auto bad = store.insert(poison);
    CHECK(bad.status == InsertStatus::unavailable);
    CHECK_THAT(bad.error, Catch::Contains("no_poison") && Catch::Contains("SQLSTATE 23514"));
    // The server's DETAIL quotes the failing row (another sender's body).
    CHECK(bad.error.find("Failing row") == std::string::npos);
    CHECK(bad.error.find("706f69736f6e") == std::string::npos);  // "poison" in hex
    // A result keeps the writer busy retrying (no idle check runs).
    DeliveryUpdate u;
    u.delivery_id = 1;
    store.record({u});
    server.query(url, "ALTER TABLE events DROP CONSTRAINT no_poison");
    // The next batch commits: the aborted transaction was rolled back.
    CHECK(test::wait_until(
        [&] { return store.insert(event("second")).status == InsertStatus::stored; },
        std::chrono::seconds(5)));
    CHECK(store.writable());
    CHECK(store.insert(poison).status == InsertStatus::stored);
}

TEST_CASE("postgres: a key is never leased to two hosts, even when ids commit out of order",
          "[store][pg]") {
    auto& server = test::shared_pg_server();
    const std::string url = server.create_database();
    PgStore b(pg_config(url, "host-b"), 16);
    PgStore a(pg_config(url, "host-a"), 16);
    // Host A's insert of row-1 draws the lower delivery id but has not
    // committed yet (held open here on a connection of the test's own).
    PGconn* raw = PQconnectdb(url.c_str());
    REQUIRE(PQstatus(raw) == CONNECTION_OK);
    auto run = [&](const char* sql) {
        PGresult* r = PQexec(raw, sql);
        const bool ok =
            PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
        std::string v = ok && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
        INFO(PQresultErrorMessage(r));
        PQclear(r);
        REQUIRE(ok);
        return v;
    };
    run("BEGIN");
    const std::string x1 =
        run("WITH e AS (INSERT INTO events(id, source, type, idempotency_key, received_at_ms, body)"
            " VALUES('evt_00000000000010000000000a', 'clay', 't', 'a', 1, '{}') RETURNING seq)"
            " INSERT INTO deliveries(event_seq, plugin, state, due_ms, attempts, scheduled,"
            " age_from_ms, finished_ms, order_key, last_error)"
            " SELECT seq, 'crm', 0, 1, 0, false, 1, 0, 'row-1', '' FROM e RETURNING id");
    // Host B stores and claims row-1's next delivery: nothing pending below
    // it is visible, so it gets it.
    NewDelivery nd{"crm", "row-1"};
    Refs refs(b);
    REQUIRE(b.insert(event("b", std::span(&nd, 1))).status == InsertStatus::stored);
    REQUIRE(refs.refs.size() == 1);
    const int64_t x2[] = {refs.refs[0].id};
    REQUIRE(std::stoll(x1) < x2[0]);
    REQUIRE(b.claim(x2, now_ms() + 30'000).size() == 1);
    run("COMMIT");
    PQfinish(raw);
    // A's own delivery of the key, lower id, now committed: not while B's
    // lease on the key lasts.
    const int64_t first[] = {std::stoll(x1)};
    CHECK(a.claim(first, now_ms() + 30'000).empty());
    const std::vector<std::string> crm = {"crm"};
    CHECK(a.claimable(crm, now_ms(), 10).empty());
    // B's call ends: the key is free.
    finish(b, x2[0], 1);
    CHECK(a.claim(first, now_ms() + 30'000).size() == 1);
}

TEST_CASE("postgres: one batch with a duplicate inside and two results of one delivery",
          "[store][pg]") {
    auto& server = test::shared_pg_server();
    const std::string url = server.create_database();
    PgStore store(pg_config(url), 16);
    NewDelivery nd{"sink", "row-7"};
    Refs refs(store);
    // Three inserts in one transaction: two share a key.
    store.hold_writer(true);
    std::vector<InsertResult> r(3);
    std::vector<std::thread> t;
    const std::string keys[] = {"same", "other", "same"};
    for (int i = 0; i < 3; ++i)
        t.emplace_back([&, i] { r[i] = store.insert(event(keys[i], std::span(&nd, 1))); });
    REQUIRE(test::wait_until([&] { return store.queue_depth() == 3; }));
    store.hold_writer(false);
    for (auto& x : t)
        x.join();
    int stored = 0;
    for (const auto& x : r)
        stored += x.status == InsertStatus::stored;
    CHECK(stored == 2);
    CHECK(r[0].id == r[2].id);
    CHECK(r[0].id != r[1].id);
    CHECK(store.event_count() == 2);
    REQUIRE(refs.refs.size() == 2);  // one delivery per stored event, none for the duplicate
    CHECK(refs.refs[0].order_key == "row-7");

    // A retry and then done for one delivery, committed together: the row
    // ends done, the retry stays in its history.
    const int64_t id = refs.refs[0].id;
    const int64_t ids[] = {id};
    REQUIRE(store.claim(ids, now_ms() + 30'000).size() == 1);
    DeliveryUpdate retry;
    retry.delivery_id = id;
    retry.state = DeliveryState::pending;
    retry.attempts = 1;
    retry.due_ms = now_ms();
    retry.last_error = "busy";
    retry.attempt = AttemptRecord{1, now_ms(), 10, "retry", "busy"};
    store.hold_writer(true);
    store.record({retry, done_result(id, 2)});
    store.hold_writer(false);
    store.flush();
    CHECK(server.query(url, "SELECT state, attempts FROM deliveries WHERE id = " +
                                std::to_string(id)) == "1|2");
    CHECK(server.query(url, "SELECT count(*) FROM attempts WHERE delivery_id = " +
                                std::to_string(id)) == "1");
}

TEST_CASE("postgres: a second running host with the same host_id is refused", "[store][pg]") {
    auto& server = test::shared_pg_server();
    const std::string url = server.create_database();
    {
        PgStore first(pg_config(url, "twin"), 16);
        CHECK_THROWS_WITH(PgStore(pg_config(url, "twin"), 16),
                          Catch::Contains("store.host_id \"twin\" is in use by another running"));
        PgStore other(pg_config(url, "not-twin"), 16);  // another id is fine
        CHECK(other.insert(event("k")).status == InsertStatus::stored);
    }
    // Gone with the first one's session: the id is free again.
    PgStore again(pg_config(url, "twin"), 16);
    CHECK(again.event_count() == 1);
}

TEST_CASE(
    "postgres: retention keeps a dead delivery a replay makes pending meanwhile, and its event",
    "[store][pg][retention]") {
    auto& server = test::shared_pg_server();
    const std::string url = server.create_database();
    PgStore store(pg_config(url), 16);
    const NewDelivery to_crm{"crm", ""};
    NewEvent e = event("old", std::span(&to_crm, 1));
    e.received_at_ms = now_ms() - 3'600'000;
    int64_t id = 0;
    std::string event_id;
    {
        Refs refs(store);
        InsertResult r = store.insert(e);
        REQUIRE(r.status == InsertStatus::stored);
        event_id = r.id;
        std::lock_guard lk(refs.mu);
        REQUIRE(refs.refs.size() == 1);
        id = refs.refs[0].id;
    }
    DeliveryUpdate dead;
    dead.delivery_id = id;
    dead.state = DeliveryState::dead;
    dead.attempts = 1;
    dead.finished_ms = now_ms();
    store.record({dead});
    store.flush();

    // A replay on another connection: the row made pending, not committed yet.
    PGconn* replay = PQconnectdb(url.c_str());
    REQUIRE(PQstatus(replay) == CONNECTION_OK);
    auto run = [&](const std::string& sql) {
        PGresult* res = PQexec(replay, sql.c_str());
        const bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        return ok;
    };
    REQUIRE(run("BEGIN"));
    REQUIRE(run("UPDATE deliveries SET state = 0 WHERE id = " + std::to_string(id)));
    // Retention past both bounds runs into the row lock and waits.
    PurgeCounts n;
    std::thread purge([&] { n = store.purge_history(now_ms() - 60'000, now_ms() - 60'000); });
    const bool waiting = test::wait_until(
        [&] {
            return server.query(url,
                                "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                                " current_database() AND wait_event_type = 'Lock'") != "0";
        },
        std::chrono::seconds(15));
    REQUIRE(run("COMMIT"));
    purge.join();
    PQfinish(replay);
    REQUIRE(waiting);
    // The replayed delivery and its event are kept.
    CHECK(n.events == 0);
    CHECK(n.deliveries == 0);
    auto left = store.event_deliveries(event_id);
    REQUIRE(left.size() == 1);
    CHECK(left[0].state == DeliveryState::pending);
    // Once it is done, the next pass takes both.
    finish(store, id, 1);
    CHECK(store.purge_history(now_ms() - 60'000, now_ms() - 60'000).events == 1);
    CHECK(store.event_count() == 0);
}
