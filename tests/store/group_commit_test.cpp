// The engine-neutral group commit (host/store/GroupCommit.h) against a
// scripted engine: what it does when a commit fails is about the queue, not
// about SQLite or PostgreSQL, so the engine here is a small deterministic
// committer that fails when told to. The engines' own failures are in
// sqlite_store_test.cpp and pg_store_test.cpp.
#include "store/GroupCommit.h"
#include "support/Wait.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace clayhook;
using clayhook::test::wait_until;
using namespace std::chrono_literals;

namespace {

// Commits what it is given, except the batches it is told to fail; records
// what each batch carried.
struct ScriptedEngine final : GroupCommit::Committer {
    std::atomic<bool> fail_next_with_results{false};
    std::atomic<int> committed_results{0};
    std::atomic<int> failures{0};
    std::mutex mu;
    std::vector<std::string> log;        // "R<id>" results, "C<id>" claims, in commit order
    std::vector<size_t> insert_batches;  // inserts per committed batch, in commit order
    // Inserts the engine has reported committed (as Store::notify_committed
    // does, inside commit()): what the listeners heard of.
    std::atomic<int> reported_inserts{0};

    // A gate tests close to keep a commit in progress.
    std::mutex gate_mu;
    std::condition_variable gate_cv;
    bool gate_open = true;
    int commits_entered = 0;

    bool commit(GroupCommit::Batch& b, std::string& error) noexcept override {
        {
            std::unique_lock g(gate_mu);
            ++commits_entered;
            gate_cv.notify_all();
            gate_cv.wait(g, [&] { return gate_open; });
        }
        std::this_thread::sleep_for(10ms);  // a round trip: callers pile up meanwhile
        if (!b.updates.empty() && fail_next_with_results.exchange(false)) {
            ++failures;
            error = "scripted failure";
            return false;  // b.updates stay with the caller
        }
        std::lock_guard lk(mu);
        for (const auto& u : b.updates)
            log.push_back("R" + std::to_string(u.delivery_id));
        for (auto* c : b.claims) {
            for (int64_t id : c->ids) {
                log.push_back("C" + std::to_string(id));
                c->claimed.push_back({id, 2});
            }
        }
        committed_results += static_cast<int>(b.updates.size());
        b.updates.clear();
        for (auto* i : b.inserts)
            i->result = {InsertStatus::stored, "evt", {}};
        if (!b.inserts.empty()) insert_batches.push_back(b.inserts.size());
        reported_inserts += static_cast<int>(b.inserts.size());
        return true;
    }
};

std::vector<DeliveryUpdate> one_result(int64_t id) {
    std::vector<DeliveryUpdate> u(1);
    u[0].delivery_id = id;
    u[0].state = DeliveryState::pending;
    return u;
}

}  // namespace

TEST_CASE("group commit: results of a failed commit are committed later without new traffic",
          "[store][group-commit]") {
    // A caller-led commit carrying results fails; nothing else arrives. The
    // writer must wake after the retry pause and commit them (it once slept
    // until the next request).
    for (int run = 0; run < 5; ++run) {
        ScriptedEngine engine;
        GroupCommit gc(engine, GroupCommit::Limits{}, "test store");
        engine.fail_next_with_results = true;
        gc.record(one_result(1));
        NewEvent e{"clay", "t", "k", "{}", 1};
        gc.insert(e);  // usually leads the commit that carries the result
        INFO("run " << run);
        CHECK(wait_until([&] { return engine.committed_results.load() == 1; }, 5s));
        CHECK(engine.failures.load() == 1);
    }
}

TEST_CASE("group commit: a claim never commits before a waiting result of an earlier attempt",
          "[store][group-commit]") {
    ScriptedEngine engine;
    GroupCommit gc(engine, GroupCommit::Limits{}, "test store");
    engine.fail_next_with_results = true;
    gc.record(one_result(7));
    // The result's commit fails: it waits out the retry pause...
    REQUIRE(wait_until([&] { return engine.failures.load() == 1; }, 5s));
    // ...and the next attempt's claim of the same delivery comes at once. It
    // must not be committed before the result (which would then overwrite it).
    const int64_t ids[] = {7};
    GroupCommit::Claim c;
    c.ids = ids;
    gc.claim(c);
    REQUIRE_FALSE(c.failed);
    std::lock_guard lk(engine.mu);
    REQUIRE(engine.log.size() == 2);
    CHECK(engine.log[0] == "R7");
    CHECK(engine.log[1] == "C7");
}

namespace {

// What insert_async() callbacks got: each result, how often each was called,
// on which thread, and how many inserts the engine had reported committed
// by then.
struct AsyncResults {
    explicit AsyncResults(size_t n) : results(n), calls(n), threads(n), reported_before(n) {}
    IntakeWriter::InsertDone done(size_t i, const ScriptedEngine* engine = nullptr) {
        return [this, i, engine](InsertResult r) {
            std::lock_guard lk(mu);
            results[i] = std::move(r);
            ++calls[i];
            threads[i] = std::this_thread::get_id();
            reported_before[i] = engine ? engine->reported_inserts.load() : 0;
            ++total;
        };
    }
    int called() {
        std::lock_guard lk(mu);
        return total;
    }
    std::mutex mu;
    std::vector<InsertResult> results;
    std::vector<int> calls;
    std::vector<std::thread::id> threads;
    std::vector<int> reported_before;
    int total = 0;
};

}  // namespace

TEST_CASE("group commit: async inserts are answered through their callbacks on another thread",
          "[store][group-commit]") {
    ScriptedEngine engine;
    constexpr size_t kN = 50;
    const NewEvent e{"clay", "t", "k", "{}", 1};  // outlives every callback
    AsyncResults got(kN);
    GroupCommit gc(engine, GroupCommit::Limits{}, "test store");
    // In rounds, each once the writer is asleep: nobody but insert_async()
    // is there to wake it. (flush() returns once the writer, done with it,
    // let go of the queue's lock, which it does by going to sleep.)
    for (size_t round = 0; round < 5; ++round) {
        gc.flush();
        for (size_t i = round * kN / 5; i < (round + 1) * kN / 5; ++i)
            gc.insert_async(e, got.done(i));
        INFO("round " << round);
        REQUIRE(wait_until([&] { return got.called() == static_cast<int>((round + 1) * kN / 5); },
                           10s));
    }
    std::lock_guard lk(got.mu);
    for (size_t i = 0; i < kN; ++i) {
        INFO("insert " << i);
        CHECK(got.calls[i] == 1);
        CHECK(got.results[i].status == InsertStatus::stored);
        CHECK(got.results[i].id == "evt");
        // Committed by the writer, never on the caller's (event loop's) thread.
        CHECK(got.threads[i] != std::this_thread::get_id());
    }
}

TEST_CASE("group commit: held, no async insert is answered until it is released",
          "[store][group-commit]") {
    ScriptedEngine engine;
    constexpr size_t kN = 8;
    const NewEvent e{"clay", "t", "k", "{}", 1};
    AsyncResults got(kN);
    GroupCommit gc(engine, GroupCommit::Limits{}, "test store");
    gc.hold(true);
    for (size_t i = 0; i < kN; ++i)
        gc.insert_async(e, got.done(i));
    // Every one of them returned at once and is queued, none answered.
    CHECK(gc.depth() == kN);
    CHECK(got.called() == 0);
    // Bounded: a writer that ignored the hold would answer within this.
    CHECK_FALSE(wait_until([&] { return got.called() > 0; }, 200ms));
    CHECK(gc.depth() == kN);
    gc.hold(false);
    REQUIRE(wait_until([&] { return got.called() == static_cast<int>(kN); }, 10s));
    CHECK(gc.depth() == 0);
    std::lock_guard lk(got.mu);
    for (size_t i = 0; i < kN; ++i)
        CHECK(got.results[i].status == InsertStatus::stored);
}

TEST_CASE("group commit: a full queue answers an async insert overloaded at once",
          "[store][group-commit]") {
    ScriptedEngine engine;
    GroupCommit::Limits limits;
    limits.max_queue = 4;
    const NewEvent e{"clay", "t", "k", "{}", 1};
    AsyncResults got(5);
    GroupCommit gc(engine, limits, "test store");
    gc.hold(true);
    for (size_t i = 0; i < 4; ++i)
        gc.insert_async(e, got.done(i));
    CHECK(got.called() == 0);
    gc.insert_async(e, got.done(4));
    {
        // Answered inside the call, on the caller's thread.
        std::lock_guard lk(got.mu);
        CHECK(got.total == 1);
        CHECK(got.calls[4] == 1);
        CHECK(got.results[4].status == InsertStatus::overloaded);
        CHECK_THAT(got.results[4].error, Catch::Contains("queue is full"));
        CHECK(got.threads[4] == std::this_thread::get_id());
    }
    gc.hold(false);
    REQUIRE(wait_until([&] { return got.called() == 5; }, 10s));
    std::lock_guard lk(got.mu);
    for (size_t i = 0; i < 4; ++i) {
        CHECK(got.calls[i] == 1);
        CHECK(got.results[i].status == InsertStatus::stored);
    }
}

TEST_CASE("group commit: stop() answers every queued async insert once, later ones at once",
          "[store][group-commit]") {
    ScriptedEngine engine;
    GroupCommit::Limits limits;
    limits.max_batch = 7;  // several batches to finish
    constexpr size_t kN = 40;
    const NewEvent e{"clay", "t", "k", "{}", 1};
    AsyncResults got(kN + 1);
    GroupCommit gc(engine, limits, "test store");
    gc.hold(true);
    for (size_t i = 0; i < kN; ++i)
        gc.insert_async(e, got.done(i));
    REQUIRE(gc.depth() == kN);
    gc.stop();  // releases the hold and finishes what is queued
    {
        std::lock_guard lk(got.mu);
        CHECK(got.total == static_cast<int>(kN));
        for (size_t i = 0; i < kN; ++i) {
            INFO("insert " << i);
            CHECK(got.calls[i] == 1);
            CHECK(got.results[i].status == InsertStatus::stored);
        }
    }
    gc.insert_async(e, got.done(kN));
    std::lock_guard lk(got.mu);
    CHECK(got.calls[kN] == 1);
    CHECK(got.results[kN].status == InsertStatus::unavailable);
    CHECK(got.results[kN].error == "test store is closing");
}

TEST_CASE("group commit: sync and async inserts share a batch, reported before answered",
          "[store][group-commit]") {
    ScriptedEngine engine;
    const NewEvent e{"clay", "t", "k", "{}", 1};
    AsyncResults got(3);
    GroupCommit gc(engine, GroupCommit::Limits{}, "test store");
    gc.hold(true);
    gc.insert_async(e, got.done(0, &engine));
    std::vector<InsertResult> sync(2);
    std::vector<int> reported_at_return(2, -1);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < 2; ++i)
        threads.emplace_back([&, i] {
            sync[i] = gc.insert(e);
            reported_at_return[i] = engine.reported_inserts.load();
        });
    REQUIRE(wait_until([&] { return gc.depth() == 3; }, 10s));
    gc.insert_async(e, got.done(1, &engine));
    gc.insert_async(e, got.done(2, &engine));
    REQUIRE(gc.depth() == 5);
    gc.hold(false);
    for (auto& t : threads)
        t.join();
    REQUIRE(wait_until([&] { return got.called() == 3; }, 10s));
    {
        std::lock_guard lk(engine.mu);
        REQUIRE(engine.insert_batches.size() == 1);  // all five in one transaction
        CHECK(engine.insert_batches[0] == 5);
    }
    for (size_t i = 0; i < 2; ++i) {
        CHECK(sync[i].status == InsertStatus::stored);
        CHECK(reported_at_return[i] == 5);
    }
    std::lock_guard lk(got.mu);
    for (size_t i = 0; i < 3; ++i) {
        INFO("async insert " << i);
        CHECK(got.calls[i] == 1);
        CHECK(got.results[i].status == InsertStatus::stored);
        // The listeners heard of the batch before its callers were answered.
        CHECK(got.reported_before[i] == 5);
    }
}

TEST_CASE("group commit: an async insert queued during a caller's commit goes to the writer",
          "[store][group-commit]") {
    ScriptedEngine engine;
    const NewEvent e{"clay", "t", "k", "{}", 1};
    AsyncResults got(1);
    GroupCommit gc(engine, GroupCommit::Limits{}, "test store");
    gc.flush();  // the writer is asleep: a caller of insert() leads
    {
        std::lock_guard g(engine.gate_mu);
        engine.gate_open = false;
    }
    InsertResult led;
    std::thread::id leader;
    std::thread t([&] {
        leader = std::this_thread::get_id();
        led = gc.insert(e);
    });
    {
        std::unique_lock g(engine.gate_mu);
        REQUIRE(engine.gate_cv.wait_for(g, 10s, [&] { return engine.commits_entered == 1; }));
    }
    // The leader holds the connection: this one is not in its batch, and
    // only the leader letting go wakes the writer for it.
    gc.insert_async(e, got.done(0));
    CHECK(got.called() == 0);
    {
        std::lock_guard g(engine.gate_mu);
        engine.gate_open = true;
    }
    engine.gate_cv.notify_all();
    t.join();
    CHECK(led.status == InsertStatus::stored);
    REQUIRE(wait_until([&] { return got.called() == 1; }, 10s));
    std::lock_guard lk(got.mu);
    CHECK(got.results[0].status == InsertStatus::stored);
    CHECK(got.threads[0] != std::this_thread::get_id());
    CHECK(got.threads[0] != leader);  // the leader stopped after its own batch
    std::lock_guard el(engine.mu);
    CHECK(engine.insert_batches == std::vector<size_t>{1, 1});
}
