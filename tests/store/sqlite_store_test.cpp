// The SQLite store over a real file in a fresh temp folder: dedup (also under
// concurrency and within one batch), durability across a restart, the queue
// bound, failed commits and recovery, dedup pruning, the commit hook, ids.
#include "store/SqliteStore.h"
#include "support/TempDir.h"
#include "support/Wait.h"

#include <catch2/catch.hpp>

#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

using namespace clayhook;
using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

namespace Catch {
template <>
struct StringMaker<clayhook::InsertStatus> {
    static std::string convert(clayhook::InsertStatus s) { return clayhook::insert_status_name(s); }
};
}  // namespace Catch

namespace {

// These cases test the direct path (GroupCommit into the tables): the
// journal's are in journal_test.cpp, and store_contract_test.cpp runs the
// behaviour both share on both paths (and on PostgreSQL).
StoreConfig config_in(const test::TempDir& dir, bool durable = true,
                      const std::string& name = "clayhook.db") {
    StoreConfig c;
    c.path = dir.file(name);
    c.durable = durable;
    c.journal = false;
    return c;
}

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
        .count();
}

NewEvent event(std::string_view source, std::string_view key,
               std::string_view body = R"({"event":"enrichment.completed"})",
               int64_t received_at_ms = now_ms()) {
    return NewEvent{source, "enrichment.completed", key, body, received_at_ms};
}

// Inserts on a thread of its own and keeps the result.
struct AsyncInsert {
    std::string source, key;
    InsertResult result;
    std::thread thread;
    AsyncInsert(Store& store, std::string source_, std::string key_)
        : source(std::move(source_)), key(std::move(key_)) {
        thread = std::thread([this, &store] { result = store.insert(event(source, key)); });
    }
    ~AsyncInsert() {
        if (thread.joinable()) thread.join();
    }
    const InsertResult& get() {
        if (thread.joinable()) thread.join();
        return result;
    }
};

// Lowers this process's file size limit (RLIMIT_FSIZE, which binds root too)
// so a write past `bytes` fails with EFBIG instead of raising SIGXFSZ:
// a real, root-proof write failure under SQLite. Restored at scope end.
class FileSizeLimit {
  public:
    explicit FileSizeLimit(rlim_t bytes) {
        ::getrlimit(RLIMIT_FSIZE, &old_);
        old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
        rlimit lower = old_;
        lower.rlim_cur = bytes;
        ok_ = ::setrlimit(RLIMIT_FSIZE, &lower) == 0;
    }
    ~FileSizeLimit() {
        ::setrlimit(RLIMIT_FSIZE, &old_);
        ::signal(SIGXFSZ, old_handler_);
    }
    bool ok() const { return ok_; }

  private:
    rlimit old_{};
    sighandler_t old_handler_ = SIG_DFL;
    bool ok_ = false;
};

uintmax_t size_or_zero(const std::string& path) {
    std::error_code ec;
    auto n = std::filesystem::file_size(path, ec);
    return ec ? 0 : n;
}

}  // namespace

TEST_CASE("a new key is stored, the same key again is a duplicate carrying the first id") {
    test::TempDir dir;
    auto store = open_store(config_in(dir), 64);

    const std::string body("{\"a\":1}\0binary\xff", 15);
    auto first = store->insert(event("clay", "delivery-1", body, 1'700'000'000'123));
    REQUIRE(first.status == InsertStatus::stored);
    CHECK(is_event_id(first.id));
    CHECK(first.error.empty());

    auto again = store->insert(event("clay", "delivery-1", "another body"));
    CHECK(again.status == InsertStatus::duplicate);
    CHECK(again.id == first.id);
    CHECK(store->event_count() == 1);

    auto got = store->get(first.id);
    REQUIRE(got.has_value());
    CHECK(got->id == first.id);
    CHECK(got->source == "clay");
    CHECK(got->type == "enrichment.completed");
    CHECK(got->key == "delivery-1");
    CHECK(got->body == body);  // the first body, byte for byte (NUL and 0xff included)
    CHECK(got->received_at_ms == 1'700'000'000'123);

    CHECK_FALSE(store->get("evt_00000000000000000000000").has_value());
    CHECK(store->writable());
}

TEST_CASE("the same key under different sources is not a duplicate") {
    test::TempDir dir;
    auto store = open_store(config_in(dir), 64);

    auto a = store->insert(event("clay", "k-1"));
    auto b = store->insert(event("stripe", "k-1"));
    // The hash input is length-prefixed: ("ab", "c") and ("a", "bc") differ.
    auto c = store->insert(event("ab", "c"));
    auto d = store->insert(event("a", "bc"));
    CHECK(a.status == InsertStatus::stored);
    CHECK(b.status == InsertStatus::stored);
    CHECK(c.status == InsertStatus::stored);
    CHECK(d.status == InsertStatus::stored);
    CHECK(std::set<std::string>{a.id, b.id, c.id, d.id}.size() == 4);
    CHECK(store->event_count() == 4);
    CHECK(store->insert(event("stripe", "k-1")).id == b.id);
}

TEST_CASE("8 threads x 200 inserts of distinct keys are all stored and counted") {
    test::TempDir dir;
    auto store = open_store(config_in(dir), 256);

    constexpr int kThreads = 8, kEach = 200;
    std::vector<std::vector<InsertResult>> results(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kEach; ++i) {
                std::string key = "t" + std::to_string(t) + "-" + std::to_string(i);
                results[t].push_back(store->insert(event("clay", key)));
            }
        });
    }
    for (auto& th : threads)
        th.join();

    std::set<std::string> ids;
    size_t stored = 0;
    for (auto& per_thread : results) {
        for (auto& r : per_thread) {
            if (r.status == InsertStatus::stored) ++stored;
            ids.insert(r.id);
        }
    }
    CHECK(stored == kThreads * kEach);
    CHECK(ids.size() == kThreads * kEach);
    CHECK(store->event_count() == kThreads * kEach);
}

TEST_CASE("16 threads inserting the same key at once: exactly one stored, the rest duplicates") {
    test::TempDir dir;
    auto store = open_store(config_in(dir), 64);

    constexpr int kThreads = 16;
    std::latch start(kThreads);
    std::vector<InsertResult> results(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            start.arrive_and_wait();
            results[t] = store->insert(event("clay", "the-same-delivery"));
        });
    }
    for (auto& th : threads)
        th.join();

    auto stored = std::count_if(results.begin(), results.end(),
                                [](auto& r) { return r.status == InsertStatus::stored; });
    auto duplicates = std::count_if(results.begin(), results.end(),
                                    [](auto& r) { return r.status == InsertStatus::duplicate; });
    CHECK(stored == 1);
    CHECK(duplicates == kThreads - 1);
    for (auto& r : results)
        CHECK(r.id == results[0].id);
    CHECK(store->event_count() == 1);
}

namespace {

// Batch sizes as the store reports them to its commit listeners.
struct BatchSizes final : CommitListener {
    Store& store;
    std::mutex mu;
    std::vector<size_t> sizes;
    explicit BatchSizes(Store& s) : store(s) { store.subscribe(this); }
    ~BatchSizes() override { store.unsubscribe(this); }
    void committed(size_t n, std::vector<DeliveryRef>&) noexcept override {
        std::lock_guard lk(mu);
        sizes.push_back(n);
    }
};

}  // namespace

TEST_CASE("a duplicate inside one batch is caught by the item before it") {
    test::TempDir dir;
    SqliteStore store(config_in(dir), 64);
    BatchSizes listener(store);
    std::vector<size_t>& batches = listener.sizes;

    store.hold_writer(true);
    AsyncInsert a(store, "clay", "dup");
    AsyncInsert b(store, "clay", "dup");
    AsyncInsert c(store, "clay", "other");
    REQUIRE(test::wait_until([&] { return store.queue_depth() == 3; }, 5s));
    store.hold_writer(false);

    const auto& ra = a.get();
    const auto& rb = b.get();
    CHECK(c.get().status == InsertStatus::stored);
    CHECK(batches == std::vector<size_t>{3});  // all three went into one transaction
    std::multiset<InsertStatus> statuses{ra.status, rb.status};
    CHECK(statuses == std::multiset<InsertStatus>{InsertStatus::stored, InsertStatus::duplicate});
    CHECK(ra.id == rb.id);
    CHECK(store.event_count() == 2);
}

TEST_CASE("events acknowledged before the store is destroyed are there after reopening it") {
    test::TempDir dir;
    StoreConfig config;
    config.path = dir.file("var/nested/clayhook.db");  // folders created on open

    std::vector<std::pair<std::string, std::string>> acknowledged;  // key, id
    {
        auto store = open_store(config, 64);
        std::vector<AsyncInsert*> pending;
        std::vector<std::unique_ptr<AsyncInsert>> inserts;
        for (int i = 0; i < 20; ++i) {
            inserts.push_back(
                std::make_unique<AsyncInsert>(*store, "clay", "k" + std::to_string(i)));
        }
        for (auto& in : inserts) {
            const auto& r = in->get();
            REQUIRE(r.status == InsertStatus::stored);
            acknowledged.emplace_back(in->key, r.id);
        }
        // The file, and SQLite's companions, are private to the owner.
        struct stat st {};
        REQUIRE(::stat(config.path.c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
        REQUIRE(::stat((config.path + "-wal").c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
    }

    auto reopened = open_store(config, 64);
    CHECK(reopened->event_count() == acknowledged.size());
    for (auto& [key, id] : acknowledged) {
        auto got = reopened->get(id);
        REQUIRE(got.has_value());
        CHECK(got->key == key);
        // The dedup record (and the hash key it was made with) survived too.
        auto again = reopened->insert(event("clay", key));
        CHECK(again.status == InsertStatus::duplicate);
        CHECK(again.id == id);
    }
}

TEST_CASE("durable and non-durable stores both commit, with FULL and NORMAL sync") {
    for (bool durable : {true, false}) {
        CAPTURE(durable);
        test::TempDir dir;
        std::string id;
        {
            SqliteStore store(config_in(dir, durable), 16);
            CHECK(store.settings().journal_mode == "wal");
            CHECK(store.settings().synchronous == (durable ? 2 : 1));
            auto r = store.insert(event("clay", "k"));
            REQUIRE(r.status == InsertStatus::stored);
            id = r.id;
        }
        SqliteStore reopened(config_in(dir, durable), 16);
        CHECK(reopened.get(id).has_value());
    }
}

TEST_CASE("a full queue answers overloaded at once, and what was queued still commits") {
    test::TempDir dir;
    SqliteStore store(config_in(dir), 4);

    store.hold_writer(true);
    std::vector<std::unique_ptr<AsyncInsert>> queued;
    for (int i = 0; i < 4; ++i) {
        queued.push_back(std::make_unique<AsyncInsert>(store, "clay", "q" + std::to_string(i)));
    }
    REQUIRE(test::wait_until([&] { return store.queue_depth() == 4; }, 5s));

    auto t0 = std::chrono::steady_clock::now();
    auto refused = store.insert(event("clay", "one-too-many"));
    auto waited = std::chrono::steady_clock::now() - t0;
    CHECK(refused.status == InsertStatus::overloaded);
    CHECK(refused.id.empty());
    CHECK_FALSE(refused.error.empty());
    CHECK(waited < 1s);       // refused at once, not after the writer got round to it
    CHECK(store.writable());  // overload is not a broken store

    store.hold_writer(false);
    for (auto& q : queued)
        CHECK(q->get().status == InsertStatus::stored);
    CHECK(store.queue_depth() == 0);
    CHECK(store.event_count() == 4);
    // The refused one was never written: it is new when it comes again.
    CHECK(store.insert(event("clay", "one-too-many")).status == InsertStatus::stored);
}

TEST_CASE("a write lock held elsewhere past the busy timeout gives unavailable, then recovers") {
    test::TempDir dir;
    SqliteStore::Tuning tuning;
    tuning.busy_timeout = 50ms;
    SqliteStore store(config_in(dir), 16, tuning);
    REQUIRE(store.insert(event("clay", "before")).status == InsertStatus::stored);

    // Another process (here: another connection) holds the write lock.
    sqlite3* other = nullptr;
    REQUIRE(sqlite3_open(store.path().c_str(), &other) == SQLITE_OK);
    sqlite3_busy_timeout(other, 5000);  // a commit of ours may be finishing
    REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);

    auto blocked = store.insert(event("clay", "during"));
    CHECK(blocked.status == InsertStatus::unavailable);
    CHECK(blocked.id.empty());
    CHECK_THAT(blocked.error, Catch::Contains("locked"));
    CHECK_FALSE(store.writable());

    REQUIRE(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(other);

    auto after = store.insert(event("clay", "during"));
    CHECK(after.status == InsertStatus::stored);  // nothing of the failed attempt remained
    CHECK(store.writable());
    CHECK(store.event_count() == 2);
}

TEST_CASE("a commit that cannot write gives unavailable and unwritable, and the next recovers") {
    test::TempDir dir;
    SqliteStore store(config_in(dir), 16);
    REQUIRE(store.insert(event("clay", "before")).status == InsertStatus::stored);

    // Root ignores file modes, so the failure comes from RLIMIT_FSIZE: any
    // write past `limit` fails (EFBIG), and this body cannot fit below it.
    const auto limit =
        std::max(size_or_zero(store.path()), size_or_zero(store.path() + "-wal")) + 16 * 1024;
    const std::string big(limit + 64 * 1024, 'x');
    InsertResult failed;
    bool limited = false;
    {
        FileSizeLimit fsize(limit);
        limited = fsize.ok();
        // No assertion inside the window: a reporter writing to a file would
        // hit the limit too.
        if (limited) failed = store.insert(event("clay", "too-big", big));
    }
    REQUIRE(limited);
    CHECK(failed.status == InsertStatus::unavailable);
    CHECK(failed.id.empty());
    CHECK_FALSE(failed.error.empty());
    CHECK_FALSE(store.writable());
    CHECK(store.event_count() == 1);

    // Room again: the next commit succeeds, and the failed key was rolled
    // back with its event (stored now, not a duplicate).
    auto retry = store.insert(event("clay", "too-big", big));
    CHECK(retry.status == InsertStatus::stored);
    CHECK(store.writable());
    CHECK(store.event_count() == 2);
    REQUIRE(store.get(retry.id).has_value());
    CHECK(store.get(retry.id)->body.size() == big.size());
}

TEST_CASE("prune_dedup forgets keys first seen before the cutoff and keeps the recent ones") {
    test::TempDir dir;
    SqliteStore::Tuning tuning;
    tuning.prune_chunk = 7;  // many small transactions over 40 records
    SqliteStore store(config_in(dir), 64, tuning);

    const int64_t now = now_ms();
    const int64_t ten_days_ago = now - 10LL * 24 * 3600 * 1000;
    const int64_t an_hour_ago = now - 3600LL * 1000;
    std::map<std::string, std::string> old_ids, recent_ids;
    for (int i = 0; i < 20; ++i) {
        std::string o = "old-" + std::to_string(i), r = "recent-" + std::to_string(i);
        old_ids[o] = store.insert(event("clay", o, "{}", ten_days_ago)).id;
        recent_ids[r] = store.insert(event("clay", r, "{}", an_hour_ago)).id;
    }
    REQUIRE(store.event_count() == 40);

    CHECK(store.prune_dedup(Clock::now() - 7 * 24h) == 20);
    CHECK(store.prune_dedup(Clock::now() - 7 * 24h) == 0);  // nothing left to forget

    for (auto& [key, id] : old_ids) {
        auto again = store.insert(event("clay", key));
        CHECK(again.status == InsertStatus::stored);
        CHECK(again.id != id);
        CHECK(store.get(id).has_value());  // the old event itself stays
    }
    for (auto& [key, id] : recent_ids) {
        auto again = store.insert(event("clay", key));
        CHECK(again.status == InsertStatus::duplicate);
        CHECK(again.id == id);
    }
    CHECK(store.event_count() == 60);
}

TEST_CASE("a dedup record is only a duplicate when its event has the same source and key") {
    test::TempDir dir;
    SqliteStore store(config_in(dir), 16);
    auto a = store.insert(event("clay", "a"));
    auto b = store.insert(event("clay", "b"));
    auto c = store.insert(event("clay", "c"));
    REQUIRE(c.status == InsertStatus::stored);

    // Tamper from outside, as a hash collision or a retention job would
    // leave things: a's record now points at b's event, c's event is gone.
    sqlite3* other = nullptr;
    REQUIRE(sqlite3_open(store.path().c_str(), &other) == SQLITE_OK);
    const std::string sql = "UPDATE dedup SET event_seq = (SELECT seq FROM events WHERE id = '" +
                            b.id + "') WHERE event_seq = (SELECT seq FROM events WHERE id = '" +
                            a.id + "'); DELETE FROM events WHERE id = '" + c.id + "';";
    REQUIRE(sqlite3_exec(other, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(other);

    // a: the record leads to another key's event, so this is new, and the
    // record keeps pointing where it did (b stays deduplicated).
    auto a2 = store.insert(event("clay", "a"));
    CHECK(a2.status == InsertStatus::stored);
    CHECK(a2.id != a.id);
    CHECK(store.insert(event("clay", "b")).id == b.id);
    // c: the record leads nowhere, so this is new and the record now leads
    // to it.
    auto c2 = store.insert(event("clay", "c"));
    CHECK(c2.status == InsertStatus::stored);
    auto c3 = store.insert(event("clay", "c"));
    CHECK(c3.status == InsertStatus::duplicate);
    CHECK(c3.id == c2.id);
}

TEST_CASE("commit listeners see batch sizes summing to the number of inserts") {
    test::TempDir dir;
    SqliteStore::Tuning tuning;
    tuning.max_batch = 16;
    SqliteStore store(config_in(dir), 64, tuning);
    BatchSizes listener(store);
    std::mutex& mu = listener.mu;
    std::vector<size_t>& batches = listener.sizes;

    constexpr int kThreads = 4, kEach = 60;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kEach; ++i) {
                // Every third key is shared by all threads: duplicates count too.
                std::string key = i % 3 == 0 ? "shared-" + std::to_string(i)
                                             : "t" + std::to_string(t) + "-" + std::to_string(i);
                store.insert(event("clay", key));
            }
        });
    }
    for (auto& th : threads)
        th.join();

    std::lock_guard lk(mu);
    size_t sum = 0;
    for (size_t n : batches)
        sum += n;
    CHECK(sum == kThreads * kEach);
    CHECK(*std::max_element(batches.begin(), batches.end()) <= 16);
    CHECK(store.event_count() == kThreads * kEach - (kThreads - 1) * (kEach / 3));
}

TEST_CASE("event ids are unique, well formed and sort in commit order") {
    test::TempDir dir;
    auto store = open_store(config_in(dir), 16);
    std::vector<std::string> ids;
    for (int i = 0; i < 300; ++i)
        ids.push_back(store->insert(event("clay", std::to_string(i))).id);
    for (auto& id : ids)
        CHECK(is_event_id(id));
    CHECK(std::is_sorted(ids.begin(), ids.end()));
    CHECK(std::set<std::string>(ids.begin(), ids.end()).size() == ids.size());
    // The leading 13 hex digits are the wall-clock ms of the commit.
    const int64_t ms = std::stoll(ids.back().substr(4, 13), nullptr, 16);
    CHECK(std::abs(ms - now_ms()) < 60'000);
}

TEST_CASE("the id generator stays strictly increasing within a ms and when the clock steps back") {
    EventIdGenerator gen(42);
    std::vector<std::string> ids;
    for (int i = 0; i < 100; ++i)
        ids.push_back(gen.next(1'700'000'000'000));
    ids.push_back(gen.next(1'699'999'999'000));  // clock stepped back a second
    ids.push_back(gen.next(1'700'000'000'001));
    for (size_t i = 1; i < ids.size(); ++i) {
        CAPTURE(i, ids[i - 1], ids[i]);
        CHECK(ids[i - 1] < ids[i]);
    }
    CHECK(ids[0].substr(0, 17) == "evt_0018bcfe56800");
    CHECK(is_event_id(ids.back()));
    CHECK_FALSE(is_event_id("evt_18BCFE568000000000000000"));  // upper case is not ours
    CHECK_FALSE(is_event_id("evt_18bcfe56800"));
}

TEST_CASE("siphash24 matches the reference test vectors") {
    // Key 00..0f; messages 00, 00 01, ... (SipHash paper, appendix A).
    const uint64_t k0 = 0x0706050403020100ULL, k1 = 0x0f0e0d0c0b0a0908ULL;
    unsigned char msg[16];
    for (int i = 0; i < 16; ++i)
        msg[i] = static_cast<unsigned char>(i);
    CHECK(siphash24(k0, k1, msg, 0) == 0x726fdb47dd0e0e31ULL);
    CHECK(siphash24(k0, k1, msg, 8) == 0x93f5f5799a932462ULL);
    CHECK(siphash24(k0, k1, msg, 15) == 0xa129ca6149be45e5ULL);
}

TEST_CASE("open_store refuses what it cannot open, naming the path and the reason") {
    test::TempDir dir;
    StoreConfig config;

    SECTION("a folder that cannot be created") {
        dir.write("plain-file", "x");
        config.path = dir.file("plain-file/clayhook.db");
        try {
            open_store(config, 16);
            FAIL("opened");
        } catch (const std::runtime_error& e) {
            CHECK_THAT(e.what(), Catch::Contains(config.path) && Catch::Contains("folder"));
        }
    }
    SECTION("a file that is not a database") {
        config.path = dir.write("not-a.db", std::string(4096, 'z'));
        try {
            open_store(config, 16);
            FAIL("opened");
        } catch (const std::runtime_error& e) {
            CHECK_THAT(e.what(), Catch::Contains(config.path) && Catch::Contains("not a database"));
        }
    }
    SECTION("an engine that does not exist") {
        config.path = dir.file("x.db");
        config.engine = "mysql";
        CHECK_THROWS_WITH(open_store(config, 16), Catch::Contains("mysql"));
    }
    SECTION("an insert queue of zero") {
        config.path = dir.file("x.db");
        CHECK_THROWS_WITH(open_store(config, 0), Catch::Contains("queue"));
    }
}

TEST_CASE("a version 1 store (before deliveries) is upgraded in place at open", "[store]") {
    test::TempDir dir;
    StoreConfig c = config_in(dir);
    {
        // The version 1 schema as the first release wrote it, with one event.
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open(c.path.c_str(), &db) == SQLITE_OK);
        REQUIRE(sqlite3_exec(db,
                             "PRAGMA journal_mode=WAL;"
                             "CREATE TABLE store_meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)"
                             " WITHOUT ROWID;"
                             "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                             " id TEXT NOT NULL UNIQUE, source TEXT NOT NULL, type TEXT NOT NULL,"
                             " idempotency_key TEXT NOT NULL, received_at_ms INTEGER NOT NULL,"
                             " body BLOB NOT NULL);"
                             "CREATE TABLE dedup (key_hash INTEGER PRIMARY KEY,"
                             " event_seq INTEGER NOT NULL, first_seen_ms INTEGER NOT NULL);"
                             "INSERT INTO store_meta VALUES('schema_version', 1);"
                             "INSERT INTO events(id, source, type, idempotency_key, received_at_ms,"
                             " body) VALUES('evt_0000000000001000000000001', 'clay',"
                             " 'enrichment.completed', 'k', 1, '{}');",
                             nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(db);
    }
    SqliteStore store(c, 16);
    CHECK(store.event_count() == 1);
    CHECK(store.get("evt_0000000000001000000000001"));
    // The old event has no deliveries; new ones get theirs.
    CHECK(store.event_deliveries("evt_0000000000001000000000001").empty());
    NewDelivery d{"sink", ""};
    NewEvent e = event("clay", "new");
    e.deliveries = std::span(&d, 1);
    auto r = store.insert(e);
    REQUIRE(r.status == InsertStatus::stored);
    auto ds = store.event_deliveries(r.id);
    REQUIRE(ds.size() == 1);
    CHECK(ds[0].plugin == "sink");
    CHECK(ds[0].state == DeliveryState::pending);
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(c.path.c_str(), &db) == SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, "SELECT value FROM store_meta WHERE name = 'schema_version'", -1,
                               &s, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    CHECK(sqlite3_column_int(s, 0) == 4);
    sqlite3_finalize(s);
    sqlite3_close(db);
}

TEST_CASE("a second store on the same file is refused, naming the holder, until the first closes",
          "[store]") {
    test::TempDir dir;
    StoreConfig c = config_in(dir);
    c.host_id = "first-host";
    auto first = open_store(c, 16);
    StoreConfig again = config_in(dir);
    again.host_id = "second-host";
    CHECK_THROWS_WITH(open_store(again, 16),
                      Catch::Contains("in use by another clayhook process") &&
                          Catch::Contains("first-host") && Catch::Contains(c.path + ".lock"));
    CHECK(first->insert(event("clay", "still-serving")).status == InsertStatus::stored);
    first.reset();
    auto second = open_store(again, 16);
    CHECK(second->event_count() == 1);
    CHECK(second->owner() == "second-host");
}

TEST_CASE("claims left by a process that died are cleared at open, their attempts stay counted",
          "[store]") {
    test::TempDir dir;
    StoreConfig c = config_in(dir);
    int64_t id = 0;
    std::string event_id;
    {
        auto store = open_store(c, 16);
        NewDelivery d{"sink", ""};
        NewEvent e = event("clay", "k");
        e.deliveries = std::span(&d, 1);
        event_id = store->insert(e).id;
        std::vector<DeliveryRef> refs;
        store->load_pending([&](DeliveryRef&& r) { refs.push_back(std::move(r)); });
        REQUIRE(refs.size() == 1);
        id = refs[0].id;
        const int64_t ids[] = {id};
        REQUIRE(store->claim(ids, now_ms() + 3'600'000).size() == 1);
        // No result: the process "dies" here.
    }
    auto store = open_store(c, 16);
    auto info = store->event_deliveries(event_id);
    REQUIRE(info.size() == 1);
    CHECK(info[0].attempts == 1);
    const std::vector<std::string> sink = {"sink"};
    CHECK(store->claimable(sink, now_ms() + 1, 10).size() == 1);  // no live lease is left
    const int64_t ids[] = {id};
    auto again = store->claim(ids, now_ms() + 30'000);
    REQUIRE(again.size() == 1);
    CHECK(again[0].attempts == 2);
}

TEST_CASE("retention: the file reuses the space of deleted events instead of growing",
          "[store][retention]") {
    test::TempDir dir;
    StoreConfig c = config_in(dir);  // the journal's segments are not what is measured here
    // The size counted is the file and its WAL. Under unbroken writes like
    // these the WAL grows to its bound (64 MiB by default) before it starts
    // over; bound it at 1000 pages here so that the file's reuse shows.
    SqliteStore::Tuning t;
    t.checkpoint_restart_pages = 1000;
    SqliteStore store(c, 64, t);
    const std::string body = "{\"pad\":\"" + std::string(3000, 'x') + "\"}";
    auto file_bytes = [&] { return store.usage().bytes; };
    std::vector<int64_t> sizes;
    int n = 0;
    for (int round = 0; round < 8; ++round) {
        for (int i = 0; i < 400; ++i) {
            const std::string key = "k" + std::to_string(n++);
            REQUIRE(store.insert(event("clay", key, body, now_ms() - 3'600'000)).status ==
                    InsertStatus::stored);
        }
        sizes.push_back(file_bytes());
        CHECK(store.purge_history(now_ms() - 60'000, now_ms() - 60'000).events == 400);
        REQUIRE(store.prune_dedup(std::chrono::system_clock::now()) == 400);
    }
    INFO("sizes after each round: " << Catch::Detail::stringify(sizes));
    // 400 x 3 KB is ~1.2 MB a round; eight rounds without reuse would be ~10 MB.
    CHECK(sizes.back() <= sizes[1] + sizes[1] / 4);
    CHECK(store.event_count() == 0);
}
