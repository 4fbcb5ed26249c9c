// The engine-neutral group commit (host/store/GroupCommit.h) against a
// scripted engine: what it does when a commit fails is about the queue, not
// about SQLite or PostgreSQL, so the engine here is a small deterministic
// committer that fails when told to. The engines' own failures are in
// sqlite_store_test.cpp and pg_store_test.cpp.
#include "store/GroupCommit.h"
#include "support/Wait.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <thread>

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
    std::vector<std::string> log;  // "R<id>" results, "C<id>" claims, in commit order

    bool commit(GroupCommit::Batch& b, std::string& error) noexcept override {
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
