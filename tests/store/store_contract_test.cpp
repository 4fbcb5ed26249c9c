// The contract every store engine keeps (host/store/Store.h), run against each
// engine: SQLite on a file in a temporary folder, PostgreSQL on a fresh
// database of a real server started by the tests (tests/support/PgServer.h).
// What only one engine does (SQLite's lock file, PostgreSQL's migrations and
// restarts) is in sqlite_store_test.cpp and pg_store_test.cpp.

#include "store/PgTestConfig.h"
#include "store/Store.h"
#include "support/PgServer.h"
#include "support/TempDir.h"
#include "support/Wait.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stop_token>
#include <thread>

using namespace clayhook;

namespace {

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// One engine under test: a fresh, empty store each time.
class Engine {
  public:
    explicit Engine(std::string engine) : engine_(std::move(engine)) {
        if (engine_ == "postgres") url_ = test::shared_pg_server().create_database();
    }
    const std::string& name() const { return engine_; }
    bool shared() const { return engine_ == "postgres"; }

    StoreConfig config(const std::string& host_id = "") const {
        if (engine_ == "postgres") return test::pg_config(url_, host_id);
        StoreConfig c;
        c.path = dir_.file("clayhook.db");
        c.host_id = host_id;
        c.journal = engine_ == "sqlite-journal";
        return c;
    }
    std::unique_ptr<Store> open(size_t max_queue = 64, const std::string& host_id = "") const {
        return open_store(config(host_id), max_queue);
    }

  private:
    std::string engine_;
    test::TempDir dir_;
    std::string url_;
};

NewEvent event(std::string_view source, std::string_view key, std::string_view body = "{}",
               int64_t received_at_ms = now_ms(), std::string_view type = "enrichment.completed") {
    return NewEvent{source, type, key, body, received_at_ms};
}

// Collects what each committed batch reported.
struct Listener final : CommitListener {
    explicit Listener(Store& s) : store(s) { store.subscribe(this); }
    ~Listener() override { store.unsubscribe(this); }
    void committed(size_t batch_size, std::vector<DeliveryRef>& deliveries) noexcept override {
        std::lock_guard lk(mu);
        batches += batch_size;
        for (auto& d : deliveries)
            refs.push_back(d);
    }
    Store& store;
    std::mutex mu;
    size_t batches = 0;
    std::vector<DeliveryRef> refs;
};

// Stores one event with deliveries to `plugins` and returns their refs.
std::vector<DeliveryRef> store_with_deliveries(Store& store, const std::string& key,
                                               std::vector<NewDelivery> plugins,
                                               std::string* id = nullptr) {
    Listener l(store);
    NewEvent e = event("clay", key);
    e.deliveries = plugins;
    InsertResult r = store.insert(e);
    REQUIRE(r.status == InsertStatus::stored);
    store.flush();  // with SQLite's intake journal, indexed and reported after insert() returns
    if (id) *id = r.id;
    std::lock_guard lk(l.mu);
    std::sort(l.refs.begin(), l.refs.end(),
              [](const DeliveryRef& a, const DeliveryRef& b) { return a.id < b.id; });
    return l.refs;
}

DeliveryUpdate result(int64_t id, DeliveryState state, uint32_t attempts, std::string outcome = "",
                      std::string reason = "") {
    DeliveryUpdate u;
    u.delivery_id = id;
    u.state = state;
    u.attempts = attempts;
    u.finished_ms = state == DeliveryState::pending ? 0 : now_ms();
    u.due_ms = state == DeliveryState::pending ? now_ms() + 60'000 : 0;
    u.last_error = reason;
    if (!outcome.empty()) u.attempt = AttemptRecord{attempts, now_ms(), 1500, outcome, reason};
    return u;
}

}  // namespace

#define ENGINES GENERATE(as<std::string>{}, "sqlite", "sqlite-journal", "postgres")

TEST_CASE("contract: a key is stored once, again it is a duplicate with the first id",
          "[store][contract]") {
    Engine eng(ENGINES);
    auto store = eng.open();
    auto a = store->insert(event("clay", "row-1:ts-1"));
    REQUIRE(a.status == InsertStatus::stored);
    CHECK(is_event_id(a.id));
    auto b = store->insert(event("clay", "row-1:ts-1"));
    CHECK(b.status == InsertStatus::duplicate);
    CHECK(b.id == a.id);
    // The same key under another source is another delivery.
    auto c = store->insert(event("other", "row-1:ts-1"));
    CHECK(c.status == InsertStatus::stored);
    CHECK(c.id != a.id);
    CHECK(store->event_count() == 2);
    CHECK(store->writable());
}

TEST_CASE("contract: N concurrent inserts of one key store exactly one", "[store][contract]") {
    Engine eng(ENGINES);
    // On a shared engine the racers are split over two hosts (two stores).
    auto first = eng.open(64, "host-a");
    std::unique_ptr<Store> second = eng.shared() ? eng.open(64, "host-b") : nullptr;
    constexpr int kThreads = 16;
    for (int round = 0; round < 5; ++round) {
        const std::string key = "race-" + std::to_string(round);
        std::vector<InsertResult> results(kThreads);
        std::atomic<int> go{0};
        std::vector<std::thread> threads;
        for (int i = 0; i < kThreads; ++i) {
            Store& s = (second && i % 2) ? *second : *first;
            threads.emplace_back([&, i, &s = s] {
                go.fetch_add(1);
                while (go.load() < kThreads) {
                }
                results[i] = s.insert(event("clay", key));
            });
        }
        for (auto& t : threads)
            t.join();
        int stored = 0, dup = 0;
        std::set<std::string> ids;
        for (const auto& r : results) {
            if (r.status == InsertStatus::stored) ++stored;
            if (r.status == InsertStatus::duplicate) ++dup;
            ids.insert(r.id);
        }
        INFO(eng.name() << " round " << round);
        CHECK(stored == 1);
        CHECK(dup == kThreads - 1);
        CHECK(ids.size() == 1);  // every duplicate names the stored one
    }
    CHECK(first->event_count() == 5);
}

TEST_CASE("contract: N concurrent async inserts of one key store exactly one, answered later",
          "[store][contract]") {
    Engine eng(ENGINES);
    // On a shared engine the copies are split over two hosts (two stores).
    auto first = eng.open(64, "host-a");
    std::unique_ptr<Store> second = eng.shared() ? eng.open(64, "host-b") : nullptr;
    constexpr int kCopies = 16;
    // What one round's callbacks touch, theirs to keep: a failed REQUIRE
    // leaves no callback pointing into a finished scope.
    struct Round {
        std::string key, body;
        NewEvent event;  // points into key and body; outlives every callback
        std::mutex mu;
        std::vector<InsertResult> results = std::vector<InsertResult>(kCopies);
        std::vector<int> calls = std::vector<int>(kCopies);
        std::vector<std::thread::id> threads = std::vector<std::thread::id>(kCopies);
        int answered = 0;
    };
    for (int round = 0; round < 3; ++round) {
        auto r = std::make_shared<Round>();
        r->key = "async-race-" + std::to_string(round);
        r->body = R"({"round":)" + std::to_string(round) + "}";
        r->event = event("clay", r->key, r->body);
        // As an event loop issues them: one after the other from one thread,
        // none waiting for the one before.
        for (int i = 0; i < kCopies; ++i) {
            Store& s = (second && i % 2) ? *second : *first;
            s.insert_async(r->event, [r, i](InsertResult res) {
                std::lock_guard lk(r->mu);
                r->results[i] = std::move(res);
                r->threads[i] = std::this_thread::get_id();
                ++r->calls[i];
                ++r->answered;
            });
        }
        REQUIRE(test::wait_until(
            [&] {
                std::lock_guard lk(r->mu);
                return r->answered == kCopies;
            },
            std::chrono::seconds(30)));
        std::lock_guard lk(r->mu);
        int stored = 0, dup = 0;
        std::set<std::string> ids;
        INFO(eng.name() << " round " << round);
        for (int i = 0; i < kCopies; ++i) {
            const InsertResult& res = r->results[i];
            CHECK(r->calls[i] == 1);
            if (res.status == InsertStatus::stored) {
                ++stored;
                // Committed and made durable on a store thread, not inside
                // the call.
                CHECK(r->threads[i] != std::this_thread::get_id());
            }
            if (res.status == InsertStatus::duplicate) ++dup;
            ids.insert(res.id);
        }
        CHECK(stored == 1);
        CHECK(dup == kCopies - 1);
        REQUIRE(ids.size() == 1);  // every duplicate names the stored one
        auto got = first->get(*ids.begin());
        REQUIRE(got);
        CHECK(got->key == r->key);
        CHECK(got->body == r->body);
    }
    CHECK(first->event_count() == 3);
}

TEST_CASE("contract: concurrent distinct inserts are all stored and reported in batches",
          "[store][contract]") {
    Engine eng(ENGINES);
    auto store = eng.open(256);
    Listener l(*store);
    constexpr int kThreads = 8, kEach = 100;
    std::vector<std::thread> threads;
    std::atomic<int> stored{0};
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < kEach; ++i) {
                auto r = store->insert(
                    event("clay", "k-" + std::to_string(t) + "-" + std::to_string(i)));
                if (r.status == InsertStatus::stored) stored.fetch_add(1);
            }
        });
    for (auto& t : threads)
        t.join();
    CHECK(stored.load() == kThreads * kEach);
    CHECK(store->event_count() == kThreads * kEach);
    store->flush();
    std::lock_guard lk(l.mu);
    CHECK(l.batches == kThreads * kEach);
}

TEST_CASE("contract: bytes from the network come back exactly (NUL, invalid UTF-8)",
          "[store][contract]") {
    Engine eng(ENGINES);
    auto store = eng.open();
    const std::string key("k\0\xff\xfe", 4);
    const std::string body("{\"a\":\"\0\"}\xc3\x28", 11);
    const std::string type("type\xff", 5);
    auto r = store->insert(event("clay", key, body, now_ms(), type));
    REQUIRE(r.status == InsertStatus::stored);
    auto got = store->get(r.id);
    REQUIRE(got);
    CHECK(got->key == key);
    CHECK(got->body == body);
    CHECK(got->type == type);
    CHECK(got->source == "clay");
    CHECK(store->insert(event("clay", key, body, now_ms(), type)).status ==
          InsertStatus::duplicate);
    CHECK_FALSE(store->get("evt_00000000000000000000000"));
}

TEST_CASE("contract: an event's deliveries are written with it and reported once",
          "[store][contract]") {
    Engine eng(ENGINES);
    auto store = eng.open();
    std::string id;
    auto refs = store_with_deliveries(*store, "fan", {{"sink", ""}, {"crm", "row-9"}}, &id);
    REQUIRE(refs.size() == 2);
    std::map<std::string, DeliveryRef> by_plugin;
    for (auto& r : refs)
        by_plugin[r.plugin] = r;
    CHECK(by_plugin["crm"].order_key == "row-9");
    CHECK(by_plugin["sink"].order_key.empty());
    CHECK(by_plugin["sink"].attempts == 0);
    CHECK(by_plugin["sink"].event_seq == by_plugin["crm"].event_seq);

    auto infos = store->event_deliveries(id);
    REQUIRE(infos.size() == 2);
    for (const auto& d : infos) {
        CHECK(d.state == DeliveryState::pending);
        CHECK(d.event_id == id);
        CHECK(by_plugin.at(d.plugin).id == d.id);
    }
    // A duplicate makes no deliveries.
    Listener l(*store);
    NewDelivery nd{"sink", ""};
    NewEvent again = event("clay", "fan");
    again.deliveries = std::span(&nd, 1);
    CHECK(store->insert(again).status == InsertStatus::duplicate);
    CHECK(l.refs.empty());
    CHECK(store->event_deliveries(id).size() == 2);

    std::vector<DeliveryRef> pending;
    store->load_pending([&](DeliveryRef&& r) { pending.push_back(std::move(r)); });
    CHECK(pending.size() == 2);
    pending.clear();
    store->load_pending([&](DeliveryRef&& r) { pending.push_back(std::move(r)); }, "crm");
    REQUIRE(pending.size() == 1);
    CHECK(pending[0].plugin == "crm");
    const int64_t seqs[] = {pending[0].event_seq, 987654321};
    auto events = store->events_by_seq(seqs);
    REQUIRE(events.size() == 1);
    CHECK(events[0].id == id);
}

TEST_CASE("contract: a claim counts the attempt, results end it and keep the history",
          "[store][contract]") {
    Engine eng(ENGINES);
    auto store = eng.open();
    std::string id;
    auto refs = store_with_deliveries(*store, "claims", {{"sink", ""}}, &id);
    const int64_t d = refs.at(0).id;
    const int64_t ids[] = {d};

    auto c1 = store->claim(ids, now_ms() + 30'000);
    REQUIRE(c1.size() == 1);
    CHECK(c1[0].id == d);
    CHECK(c1[0].attempts == 1);
    // Counted before any result: what a crash during the call leaves.
    CHECK(store->event_deliveries(id).at(0).attempts == 1);
    CHECK(store->event_deliveries(id).at(0).claimed_by == store->owner());
    CHECK(store->event_deliveries(id).at(0).lease_until_ms > now_ms());

    store->record({result(d, DeliveryState::pending, 1, "retry", "HTTP 503 from the CRM")});
    store->flush();
    auto c2 = store->claim(ids, now_ms() + 30'000);
    REQUIRE(c2.size() == 1);
    CHECK(c2[0].attempts == 2);
    store->record({result(d, DeliveryState::done, 2)});
    store->flush();

    auto info = store->event_deliveries(id).at(0);
    CHECK(info.state == DeliveryState::done);
    CHECK(info.attempts == 2);
    CHECK(info.lease_until_ms == 0);  // the result ended the lease
    REQUIRE(info.history.size() == 1);
    CHECK(info.history[0].outcome == "retry");
    CHECK(info.history[0].reason == "HTTP 503 from the CRM");
    CHECK(info.history[0].duration_us == 1500);
    // Finished: nobody claims it again.
    CHECK(store->claim(ids, now_ms() + 30'000).empty());
    std::vector<DeliveryRef> pending;
    store->load_pending([&](DeliveryRef&& r) { pending.push_back(std::move(r)); });
    CHECK(pending.empty());
}

TEST_CASE(
    "contract: a claim that never reported is a lost attempt at the next claim, a crash record "
    "forgives the calls beside the one that crashed",
    "[store][contract][poison]") {
    Engine eng(ENGINES);
    std::string id;
    std::vector<int64_t> d;
    {
        auto store = eng.open(64, "h1");
        auto refs =
            store_with_deliveries(*store, "lost", {{"sink", ""}, {"crm", ""}, {"x", ""}}, &id);
        for (const auto& r : refs)
            d.push_back(r.id);
        auto c = store->claim(d, now_ms() + 30'000);
        REQUIRE(c.size() == 3);
        for (const auto& x : c)
            CHECK(x.lost == 0);
        // The process dies during the calls: no result is ever recorded.
    }
    const std::string reason = "the host died of SIGSEGV during this call (plugin 'sink')";
    {
        auto store = eng.open(64, "h2");
        // Its crash record says it died in the sink's call.
        const int64_t guilty[] = {d[0]};
        store->settle_crash("h1", guilty, reason);
        auto c = store->claim(d, now_ms() + 1);  // leases that run out at once
        REQUIRE(c.size() == 3);
        std::map<int64_t, ClaimedDelivery> by;
        for (const auto& x : c)
            by[x.id] = x;
        CHECK(by[d[0]].lost == 1);
        CHECK(by[d[0]].attempts == 2);
        CHECK(by[d[1]].lost == 0);  // forgiven bystanders; their attempts still count
        CHECK(by[d[1]].attempts == 2);
        CHECK(by[d[2]].lost == 0);
        for (const auto& info : store->event_deliveries(id))
            if (info.id == d[0]) CHECK(info.last_error == reason);
        // Dies again, with no crash record this time (SIGKILL).
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // past the 1 ms leases
    {
        auto store = eng.open(64, "h3");
        auto c = store->claim(d, now_ms() + 30'000);
        REQUIRE(c.size() == 3);
        std::map<int64_t, uint32_t> lost;
        for (const auto& x : c)
            lost[x.id] = x.lost;
        CHECK(lost[d[0]] == 2);
        CHECK(lost[d[1]] == 1);
        CHECK(lost[d[2]] == 1);
        // A result in between resets nothing, but ends the lease: the next
        // claim counts no loss.
        store->record({result(d[1], DeliveryState::pending, 3, "retry", "HTTP 503")});
        store->flush();
        const int64_t one[] = {d[1]};
        auto again = store->claim(one, now_ms() + 30'000);
        REQUIRE(again.size() == 1);
        CHECK(again[0].lost == 1);
        CHECK(again[0].attempts == 4);
        // Dead, then replayed: the operator starts it afresh.
        store->record({result(d[0], DeliveryState::dead, 3, "fail", "poison")});
        store->flush();
        const int64_t first[] = {d[0]};
        REQUIRE(store->replay(first).size() == 1);
        auto fresh = store->claim(first, now_ms() + 30'000);
        REQUIRE(fresh.size() == 1);
        CHECK(fresh[0].lost == 0);
        CHECK(fresh[0].attempts == 1);
    }
}

TEST_CASE(
    "contract: kill marks pending deliveries dead by ids, plugin and event, a late result "
    "does not bring one back",
    "[store][contract][poison]") {
    Engine eng(ENGINES);
    auto store = eng.open();
    std::string e1, e2;
    auto r1 = store_with_deliveries(*store, "k1", {{"sink", ""}, {"crm", ""}}, &e1);
    auto r2 = store_with_deliveries(*store, "k2", {{"sink", ""}}, &e2);
    const std::string why = "marked dead by the operator: poison";

    KillFilter f;
    f.plugin = "sink";
    f.event_id = e1;
    CHECK(store->kill_pending(f, why) == std::vector<int64_t>{r1[0].id});
    for (const auto& info : store->event_deliveries(e1)) {
        if (info.id == r1[0].id) {
            CHECK(info.state == DeliveryState::dead);
            CHECK(info.last_error == why);
            CHECK(info.finished_ms > 0);
        } else {
            CHECK(info.state == DeliveryState::pending);
        }
    }
    // Killed while its call runs: the call's result is dropped.
    const int64_t crm[] = {r1[1].id};
    REQUIRE(store->claim(crm, now_ms() + 30'000).size() == 1);
    KillFilter by_id;
    by_id.ids = {r1[1].id};
    CHECK(store->kill_pending(by_id, why) == std::vector<int64_t>{r1[1].id});
    store->record({result(r1[1].id, DeliveryState::done, 1)});
    store->flush();
    for (const auto& info : store->event_deliveries(e1))
        CHECK(info.state == DeliveryState::dead);
    // Only pending ones: nothing left of e1.
    KillFilter by_event;
    by_event.event_id = e1;
    CHECK(store->kill_pending(by_event, why).empty());
    // By plugin: e2's sink.
    KillFilter by_plugin;
    by_plugin.plugin = "sink";
    CHECK(store->kill_pending(by_plugin, why) == std::vector<int64_t>{r2[0].id});
    CHECK(store->dead_ids("", 10).size() == 3);
    CHECK_THROWS(store->kill_pending(KillFilter{}, why));
}

TEST_CASE(
    "contract: right after the answer, an event's deliveries can be read, counted, asked "
    "again and killed by its id (the intake journal indexes it first)",
    "[store][contract][journal]") {
    Engine eng(ENGINES);
    auto store = eng.open();
    auto insert = [&](const std::string& key) {
        NewEvent e = event("clay", key);
        std::vector<NewDelivery> plugins = {{"sink", ""}, {"crm", ""}};
        e.deliveries = plugins;
        InsertResult r = store->insert(e);
        REQUIRE(r.status == InsertStatus::stored);
        return r.id;  // no flush(): as the admin API sees it
    };
    const std::string seen = insert("seen");
    CHECK(store->event_deliveries(seen).size() == 2);
    const std::string counted = insert("counted");
    int64_t crm_pending = -1;
    for (const auto& [plugin, c] : store->delivery_counts())
        if (plugin == "crm") crm_pending = c[0];
    CHECK(crm_pending == 2);

    const std::string again = insert("again");
    const auto scheduled = store->schedule_again(again, "sink", now_ms() + 3'600'000, {});
    REQUIRE(scheduled);
    CHECK(scheduled->created);

    const std::string killed = insert("killed");
    KillFilter f;
    f.event_id = killed;
    CHECK(store->kill_pending(f, "poison").size() == 2);
}

TEST_CASE("contract: the store reports its size, and it grows with what it holds",
          "[store][contract][usage]") {
    Engine eng(ENGINES);
    auto store = eng.open();
    const Store::Usage before = store->usage();
    CHECK(before.bytes > 0);
    if (eng.shared()) {
        CHECK(before.free_bytes == -1);  // the server's disk is its own
    } else {
        CHECK(before.free_bytes > 0);
    }
    const std::string body(4000, 'x');
    const std::string doc = "{\"pad\":\"" + body + "\"}";
    for (int i = 0; i < 300; ++i) {
        const std::string key = "usage-" + std::to_string(i);  // NewEvent holds views
        NewEvent e = event("clay", key, doc);
        REQUIRE(store->insert(e).status == InsertStatus::stored);
    }
    CHECK(store->usage().bytes > before.bytes);
}

TEST_CASE("contract: claimable lists due work under no lease, oldest first", "[store][contract]") {
    Engine eng(ENGINES);
    auto store = eng.open();
    auto a = store_with_deliveries(*store, "a", {{"sink", ""}});
    auto b = store_with_deliveries(*store, "b", {{"sink", ""}, {"other", ""}});
    const std::vector<std::string> sink = {"sink"};
    auto list = store->claimable(sink, now_ms() + 1, 10);
    REQUIRE(list.size() == 2);
    CHECK(list[0].id == a[0].id);
    CHECK(list[1].plugin == "sink");
    // Due later than asked: not listed.
    CHECK(store->claimable(sink, a[0].due_ms - 1, 10).empty());
    // Claimed: under a lease, not listed.
    const int64_t ids[] = {a[0].id};
    REQUIRE(store->claim(ids, now_ms() + 30'000).size() == 1);
    list = store->claimable(sink, now_ms() + 1, 10);
    if (eng.shared()) {
        REQUIRE(list.size() == 1);
        CHECK(list[0].id != a[0].id);
    }
    // Done: never listed.
    store->record({result(a[0].id, DeliveryState::done, 1)});
    store->flush();
    list = store->claimable(sink, now_ms() + 1, 10);
    REQUIRE(list.size() == 1);
    CHECK(list[0].id != a[0].id);
    CHECK(store->claimable(sink, now_ms() + 1, 0).empty());
}

TEST_CASE("contract: replay brings dead deliveries back, attempts from zero", "[store][contract]") {
    Engine eng(ENGINES);
    auto store = eng.open();
    std::string id;
    auto refs = store_with_deliveries(*store, "dead", {{"sink", ""}, {"crm", ""}}, &id);
    const int64_t ids[] = {refs[0].id};
    REQUIRE(store->claim(ids, now_ms() + 30'000).size() == 1);
    store->record({result(refs[0].id, DeliveryState::dead, 1, "fail", "HTTP 400: bad field")});
    store->flush();
    auto dead = store->dead_ids("", 10);
    REQUIRE(dead.size() == 1);
    CHECK(dead[0] == refs[0].id);
    CHECK(store->dead_ids("crm", 10).empty());

    const int64_t both[] = {refs[0].id, refs[1].id};  // the second is not dead: left alone
    auto back = store->replay(both);
    REQUIRE(back.size() == 1);
    CHECK(back[0].id == refs[0].id);
    CHECK(back[0].attempts == 0);
    CHECK(store->dead_ids("", 10).empty());
    auto infos = store->event_deliveries(id);
    for (const auto& d : infos) {
        CHECK(d.state == DeliveryState::pending);
        if (d.id == refs[0].id) CHECK(d.history.size() == 1);  // its history stays
    }
    auto again = store->claim(ids, now_ms() + 30'000);
    REQUIRE(again.size() == 1);
    CHECK(again[0].attempts == 1);
}

TEST_CASE("contract: deliver-again makes one scheduled delivery and then moves it",
          "[store][contract]") {
    Engine eng(ENGINES);
    auto store = eng.open();
    std::string id;
    store_with_deliveries(*store, "sched", {{"retry", ""}}, &id);
    const int64_t at = now_ms() + 60'000;
    auto s1 = store->schedule_again(id, "retry", at, {});
    REQUIRE(s1);
    CHECK(s1->created);
    CHECK(s1->ref.due_ms == at);
    auto s2 = store->schedule_again(id, "retry", at + 1000, {});
    REQUIRE(s2);
    CHECK_FALSE(s2->created);
    CHECK(s2->ref.id == s1->ref.id);
    // Busy here: a new one instead of moving the one being handled.
    const int64_t busy[] = {s1->ref.id};
    auto s3 = store->schedule_again(id, "retry", at, busy);
    REQUIRE(s3);
    CHECK(s3->created);
    CHECK(s3->ref.id != s1->ref.id);
    CHECK(store->event_deliveries(id).size() == 3);
    CHECK_FALSE(store->schedule_again("evt_00000000000000000000000", "retry", at, {}));
}

TEST_CASE("contract: plugin kv and paused flags", "[store][contract]") {
    Engine eng(ENGINES);
    auto store = eng.open();
    const std::string key("cursor\0x", 8), value("\x00\xff\x01", 3);
    CHECK_FALSE(store->kv_get("p", key));
    store->kv_put("p", key, value);
    store->kv_put("q", key, "other");
    CHECK(store->kv_get("p", key) == value);
    store->kv_put("p", key, "v2");
    CHECK(store->kv_get("p", key) == std::string("v2"));
    CHECK(store->kv_delete("p", key));
    CHECK_FALSE(store->kv_delete("p", key));
    CHECK_FALSE(store->kv_get("p", key));
    CHECK(store->kv_get("q", key) == std::string("other"));

    CHECK(store->paused_plugins().empty());
    store->set_paused("crm", true);
    store->set_paused("sink", true);
    store->set_paused("sink", false);
    CHECK(store->paused_plugins() == std::set<std::string>{"crm"});
}

TEST_CASE("contract: admin queries filter and page", "[store][contract]") {
    Engine eng(ENGINES);
    auto store = eng.open();
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i) {
        const std::string key = "page-" + std::to_string(i);  // outlives insert()
        NewDelivery nd{"sink", ""};
        NewEvent e = event("clay", key, "{}", now_ms(),
                           i % 2 ? "table.row.created" : "enrichment.completed");
        e.deliveries = std::span(&nd, 1);
        auto r = store->insert(e);
        REQUIRE(r.status == InsertStatus::stored);
        ids.push_back(r.id);
    }
    EventFilter all;
    auto page = store->list_events(all);
    REQUIRE(page.size() == 5);
    CHECK(page[0].id == ids[4]);  // newest first
    CHECK(page[0].pending == 1);
    EventFilter typed;
    typed.type = "table.row.created";
    CHECK(store->list_events(typed).size() == 2);
    EventFilter paged;
    paged.limit = 2;
    auto p1 = store->list_events(paged);
    REQUIRE(p1.size() == 2);
    paged.before_id = p1.back().id;
    auto p2 = store->list_events(paged);
    REQUIRE(p2.size() == 2);
    CHECK(p2[0].id == ids[2]);

    store->flush();  // deliveries get their ids in the tables (the journal indexes them later)
    DeliveryFilter df;
    df.limit = 3;
    auto d1 = store->list_deliveries(df);
    REQUIRE(d1.size() == 3);
    df.before_id = d1.back().id;
    CHECK(store->list_deliveries(df).size() == 2);
    // One done: the counts and the state filters follow.
    const int64_t one[] = {d1[0].id};
    store->claim(one, now_ms() + 1000);
    store->record({result(d1[0].id, DeliveryState::done, 1)});
    store->flush();
    auto counts = store->delivery_counts();
    REQUIRE(counts.size() == 1);
    CHECK(counts[0].first == "sink");
    CHECK(counts[0].second == std::array<int64_t, 3>{4, 1, 0});
    EventFilter done;
    done.status = DeliveryState::done;
    CHECK(store->list_events(done).size() == 1);
    DeliveryFilter pending;
    pending.state = DeliveryState::pending;
    pending.plugin = "sink";
    CHECK(store->list_deliveries(pending).size() == 4);
}

TEST_CASE("contract: prune forgets old dedup records and keeps recent ones", "[store][contract]") {
    Engine eng(ENGINES);
    auto store = eng.open();
    const int64_t old = now_ms() - 3'600'000;
    for (int i = 0; i < 10; ++i)
        REQUIRE(store->insert(event("clay", "old-" + std::to_string(i), "{}", old)).status ==
                InsertStatus::stored);
    REQUIRE(store->insert(event("clay", "new")).status == InsertStatus::stored);
    CHECK(store->prune_dedup(std::chrono::system_clock::now() - std::chrono::minutes(1)) == 10);
    // Forgotten: stored anew. Kept: still a duplicate.
    CHECK(store->insert(event("clay", "old-3")).status == InsertStatus::stored);
    CHECK(store->insert(event("clay", "new")).status == InsertStatus::duplicate);
    CHECK(store->event_count() == 12);
}

namespace {

// Stores one event received at `at_ms` with deliveries to `plugins`.
std::pair<std::string, std::vector<DeliveryRef>> stored_at(Store& store, const std::string& key,
                                                           int64_t at_ms,
                                                           std::vector<NewDelivery> plugins) {
    Listener l(store);
    NewEvent e = event("clay", key, "{}", at_ms);
    e.deliveries = plugins;
    InsertResult r = store.insert(e);
    REQUIRE(r.status == InsertStatus::stored);
    store.flush();  // with SQLite's intake journal, indexed and reported after insert() returns
    std::lock_guard lk(l.mu);
    std::sort(l.refs.begin(), l.refs.end(),
              [](const DeliveryRef& a, const DeliveryRef& b) { return a.id < b.id; });
    return {r.id, l.refs};
}

// Claims the delivery and records `u` for it.
void finish(Store& store, const DeliveryUpdate& u) {
    const int64_t ids[] = {u.delivery_id};
    REQUIRE(store.claim(ids, now_ms() + 30'000).size() == 1);
    store.record({u});
    store.flush();
}

}  // namespace

TEST_CASE("contract: retention deletes old finished events with their deliveries and attempts",
          "[store][contract][retention]") {
    Engine eng(ENGINES);
    auto store = eng.open();
    const int64_t hour_ago = now_ms() - 3'600'000, two_hours_ago = now_ms() - 7'200'000;
    // Done after a retry (one attempt row): goes.
    auto [done, done_refs] = stored_at(*store, "done", hour_ago, {{"sink", ""}});
    finish(*store, result(done_refs[0].id, DeliveryState::pending, 1, "retry", "HTTP 503"));
    finish(*store, result(done_refs[0].id, DeliveryState::done, 2));
    // No plugin subscribed: goes.
    auto [bare, bare_refs] = stored_at(*store, "bare", hour_ago, {});
    // Still pending: stays, however old.
    auto [pending, pending_refs] = stored_at(*store, "pending", two_hours_ago, {{"sink", ""}});
    // Dead, inside the dead bound: stays.
    auto [dead, dead_refs] = stored_at(*store, "dead", hour_ago, {{"sink", ""}, {"crm", ""}});
    finish(*store, result(dead_refs[0].id, DeliveryState::done, 1));
    finish(*store, result(dead_refs[1].id, DeliveryState::dead, 1, "fail", "HTTP 400"));
    // Dead, past the dead bound: goes with both its deliveries and its attempt.
    auto [old_dead, old_dead_refs] =
        stored_at(*store, "old-dead", two_hours_ago, {{"sink", ""}, {"crm", ""}});
    finish(*store, result(old_dead_refs[0].id, DeliveryState::done, 1));
    finish(*store, result(old_dead_refs[1].id, DeliveryState::dead, 1, "fail", "HTTP 400"));
    // Recent and done: stays.
    auto [fresh, fresh_refs] = stored_at(*store, "fresh", now_ms(), {{"sink", ""}});
    finish(*store, result(fresh_refs[0].id, DeliveryState::done, 1));

    const PurgeCounts n = store->purge_history(now_ms() - 1'800'000, now_ms() - 5'400'000);
    CHECK(n.events == 3);
    CHECK(n.deliveries == 3);
    CHECK(n.attempts == 2);
    CHECK_FALSE(store->get(done));
    CHECK(store->event_deliveries(done).empty());
    CHECK_FALSE(store->get(bare));
    CHECK_FALSE(store->get(old_dead));
    CHECK(store->get(pending));
    CHECK(store->get(dead));
    CHECK(store->event_deliveries(dead).size() == 2);
    CHECK(store->get(fresh));
    CHECK(store->event_count() == 3);
    // The pending one is still handed out.
    std::vector<int64_t> still;
    store->load_pending([&](DeliveryRef&& r) { still.push_back(r.id); });
    CHECK(still == std::vector<int64_t>{pending_refs[0].id});
    // A second pass finds nothing more; dead_before 0 keeps dead ones for ever.
    CHECK(store->purge_history(now_ms() - 1'800'000, now_ms() - 5'400'000).events == 0);
    CHECK(store->purge_history(now_ms() + 1'000, 0).events == 1);  // fresh, done
    CHECK(store->get(dead));
}

TEST_CASE("contract: retention walks a long history in chunks and stops at a request",
          "[store][contract][retention]") {
    Engine eng(ENGINES);
    auto store = eng.open();
    const int64_t old = now_ms() - 3'600'000;
    for (int i = 0; i < 700; ++i) {  // more than two chunks of 256
        const std::string key = "k" + std::to_string(i);
        REQUIRE(store->insert(event("clay", key, "{}", old)).status == InsertStatus::stored);
    }
    REQUIRE(store->insert(event("clay", "new")).status == InsertStatus::stored);
    std::stop_source stopped;
    stopped.request_stop();
    CHECK(store->purge_history(now_ms() - 60'000, 0, stopped.get_token()).events == 0);
    CHECK(store->purge_history(now_ms() - 60'000, 0).events == 700);
    CHECK(store->event_count() == 1);
}

TEST_CASE("contract: the store reports when its oldest pending delivery arrived",
          "[store][contract][usage]") {
    Engine eng(ENGINES);
    auto store = eng.open();
    CHECK(store->usage().oldest_pending_ms == 0);
    const int64_t t0 = now_ms() - 90'000;
    auto [a, a_refs] = stored_at(*store, "a", t0, {{"sink", ""}});
    auto [b, b_refs] = stored_at(*store, "b", now_ms(), {{"sink", ""}});
    CHECK(store->usage().oldest_pending_ms == t0);
    finish(*store, result(a_refs[0].id, DeliveryState::done, 1));
    CHECK(store->usage().oldest_pending_ms == b_refs[0].received_at_ms);
    finish(*store, result(b_refs[0].id, DeliveryState::done, 1));
    CHECK(store->usage().oldest_pending_ms == 0);
}

TEST_CASE("contract: dead letters grouped by plugin and reason, one group listed, discarded",
          "[store][contract][console]") {
    Engine eng(ENGINES);
    auto store = eng.open();
    std::vector<int64_t> timeouts, bad_field;
    for (int i = 0; i < 5; ++i) {
        auto [id, refs] = stored_at(*store, "d" + std::to_string(i), now_ms(), {{"crm", ""}});
        const bool timeout = i < 3;
        finish(*store, result(refs[0].id, DeliveryState::dead, 1, "fail",
                              timeout ? "HTTP 504: timeout" : "HTTP 400: bad field"));
        (timeout ? timeouts : bad_field).push_back(refs[0].id);
    }
    auto [live, live_refs] = stored_at(*store, "alive", now_ms(), {{"crm", ""}});

    auto groups = store->dead_letter_groups(10);
    REQUIRE(groups.size() == 2);
    CHECK(groups[0].plugin == "crm");
    CHECK(groups[0].reason == "HTTP 504: timeout");
    CHECK(groups[0].count == 3);
    CHECK(groups[0].first_ms > 0);
    CHECK(groups[0].last_ms >= groups[0].first_ms);
    CHECK(groups[1].reason == "HTTP 400: bad field");
    CHECK(groups[1].count == 2);

    DeliveryFilter f;
    f.state = DeliveryState::dead;
    f.plugin = "crm";
    f.last_error = "HTTP 400: bad field";
    auto one = store->list_deliveries(f);
    INFO("engine " << eng.name());
    REQUIRE(one.size() == 2);
    CHECK(one[0].id == bad_field[1]);  // newest first

    // Only dead ones go, with their attempts.
    std::vector<int64_t> ids = timeouts;
    ids.push_back(live_refs[0].id);
    CHECK(store->discard_dead(ids) == 3);
    groups = store->dead_letter_groups(10);
    REQUIRE(groups.size() == 1);
    CHECK(groups[0].count == 2);
    auto left = store->event_deliveries(live);
    REQUIRE(left.size() == 1);
    CHECK(left[0].state == DeliveryState::pending);
    CHECK(store->discard_dead(ids) == 0);
}

TEST_CASE("contract: events found by row_id in their body", "[store][contract][console]") {
    Engine eng(ENGINES);
    auto store = eng.open();
    const std::string a = R"({"event":"table.row.created","row_id":"row_42"})";
    const std::string b = R"({"event": "table.row.created", "row_id": "row_42"})";
    const std::string c = R"({"event":"table.row.created","row_id":"row_420"})";
    REQUIRE(store->insert(event("clay", "a", a)).status == InsertStatus::stored);
    REQUIRE(store->insert(event("clay", "b", b)).status == InsertStatus::stored);
    REQUIRE(store->insert(event("clay", "c", c)).status == InsertStatus::stored);
    EventFilter f;
    f.row_id = "row_42";
    auto found = store->list_events(f);
    REQUIRE(found.size() == 2);
    CHECK(found[0].key == "b");
    CHECK(found[1].key == "a");
    f.row_id = "nope";
    CHECK(store->list_events(f).empty());
    CHECK(store->list_events(EventFilter{}).size() == 3);
}
