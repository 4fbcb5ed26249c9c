// The dispatcher against a real SQLite store and the real probe plugin: each
// result kind, backoff, dead letters and replay, batching, ordering, pause,
// the key-value store and delayed re-delivery across a restart.
#include "dispatch/DispatchRig.h"

#include <set>

using namespace clayhook;
using namespace clayhook::test;
using namespace std::chrono_literals;

TEST_CASE("dispatch: a stored event is handed to its plugin once and marked done", "[dispatch]") {
    DispatchRig rig;
    rig.up();
    std::string id = rig.post();
    REQUIRE(wait_until([&] { return rig.state_is(id, DeliveryState::done); }));
    auto d = rig.delivery(id);
    CHECK(d.attempts == 1);
    CHECK(d.finished_ms > 0);
    CHECK(d.history.empty());
    auto got = rig.lines_for(id);
    REQUIRE(got.size() == 1);
    CHECK(got[0].get_int("attempt", 0) == 1);
    CHECK(rig.metric("clayhook_dispatch_deliveries_total", ",outcome=\"done\"") == 1);
    CHECK(
        rig.metrics.histogram("clayhook_dispatch_end_to_end_seconds", "plugin=\"p\"", {}).count() ==
        1);
    rig.down();
    // Done is for good: a restart on the same store hands nothing over again.
    rig.up();
    rig.post();  // a marker: once it is handled, anything pending would have been too
    REQUIRE(wait_until([&] { return rig.lines().size() == 2; }));
    CHECK(rig.lines_for(id).size() == 1);
}

TEST_CASE("dispatch: retry, then done, with the attempt history kept", "[dispatch]") {
    DispatchRig rig;
    rig.up();
    std::string id = rig.post(R"({"retry_until":3})");
    REQUIRE(wait_until([&] { return rig.state_is(id, DeliveryState::done); }));
    auto d = rig.delivery(id);
    CHECK(d.attempts == 3);
    REQUIRE(d.history.size() == 2);
    CHECK(d.history[0].attempt == 1);
    CHECK(d.history[0].outcome == "retry");
    CHECK(d.history[0].reason == "probe says retry");
    CHECK(d.history[1].attempt == 2);
    auto got = rig.lines_for(id);
    REQUIRE(got.size() == 3);
    for (int i = 0; i < 3; ++i)
        CHECK(got[static_cast<size_t>(i)].get_int("attempt", 0) == i + 1);
    CHECK(rig.metric("clayhook_dispatch_retries_total") == 2);
}

TEST_CASE("dispatch: the wait a plugin asks for is honoured", "[dispatch]") {
    DispatchRig rig;
    rig.up();
    std::string id = rig.post(R"({"retry_until":2,"retry_after_ms":300})");
    REQUIRE(wait_until([&] { return rig.state_is(id, DeliveryState::done); }));
    auto got = rig.lines_for(id);
    REQUIRE(got.size() == 2);
    CHECK(got[1].get_int("t", 0) - got[0].get_int("t", 0) >= 300);
}

TEST_CASE("dispatch: an exception escaping the plugin counts as a retry", "[dispatch]") {
    DispatchRig rig;
    rig.dispatch.retry.max_attempts = 2;
    rig.up();
    std::string id = rig.post(R"({"throw":true})");
    REQUIRE(wait_until([&] { return rig.state_is(id, DeliveryState::dead); }));
    auto d = rig.delivery(id);
    REQUIRE(d.history.size() == 2);
    CHECK(d.history[0].outcome == "retry");
    CHECK(d.history[0].reason.find("probe threw") != std::string::npos);
    CHECK(d.last_error.find("gave up after 2 attempts") != std::string::npos);
}

TEST_CASE("dispatch: fail goes straight to the dead letters", "[dispatch]") {
    DispatchRig rig;
    rig.up();
    std::string id = rig.post(R"({"fail":true})");
    REQUIRE(wait_until([&] { return rig.state_is(id, DeliveryState::dead); }));
    auto d = rig.delivery(id);
    CHECK(d.attempts == 1);
    CHECK(d.last_error == "failed: probe says fail");
    REQUIRE(d.history.size() == 1);
    CHECK(d.history[0].outcome == "fail");
    CHECK(rig.lines_for(id).size() == 1);
    CHECK(rig.metric("clayhook_dispatch_dead_letters_total") == 1);
    CHECK(rig.metric("clayhook_dispatch_deliveries_total", ",outcome=\"fail\"") == 1);
}

TEST_CASE("dispatch: max_attempts exhausted makes a dead letter", "[dispatch]") {
    DispatchRig rig;
    rig.dispatch.retry.max_attempts = 4;
    rig.up();
    std::string id = rig.post(R"({"retry_until":100})");
    REQUIRE(wait_until([&] { return rig.state_is(id, DeliveryState::dead); }));
    auto d = rig.delivery(id);
    CHECK(d.attempts == 4);
    CHECK(d.history.size() == 4);
    CHECK(d.last_error == "gave up after 4 attempts: probe says retry");
    CHECK(rig.lines_for(id).size() == 4);
    auto dead = rig.store->list_deliveries({DeliveryState::dead, "p", 0, 10});
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].event_id == id);
}

TEST_CASE("dispatch: a retry that would land past max_age makes a dead letter", "[dispatch]") {
    DispatchRig rig;
    rig.dispatch.retry.max_age = 1s;
    rig.up();
    std::string id = rig.post(R"({"retry_until":5,"retry_after_ms":5000})");
    REQUIRE(wait_until([&] { return rig.state_is(id, DeliveryState::dead); }));
    auto d = rig.delivery(id);
    CHECK(d.attempts == 1);
    CHECK(d.last_error.find("past max_age") != std::string::npos);
}

TEST_CASE("dispatch: backoff is exponential with full jitter, within base and cap",
          "[dispatch][backoff]") {
    RetryPolicy p;
    p.backoff_base = 100ms;
    p.backoff_cap = 1000ms;
    std::mt19937_64 rng(42);
    for (uint32_t attempts = 1; attempts <= 12; ++attempts) {
        int64_t ceiling = std::min<int64_t>(1000, 100LL << std::min<uint32_t>(attempts - 1, 20));
        int64_t lo = INT64_MAX, hi = 0;
        for (int i = 0; i < 2000; ++i) {
            int64_t d = backoff_delay(p, attempts, rng).count();
            REQUIRE(d >= 0);
            REQUIRE(d <= ceiling);
            lo = std::min(lo, d);
            hi = std::max(hi, d);
        }
        // Full jitter: the whole range is used, not just a band near the ceiling.
        CHECK(lo <= ceiling / 10);
        CHECK(hi >= ceiling * 9 / 10);
    }
    // Huge attempt counts do not overflow past the cap.
    CHECK(backoff_delay(p, 4000000000u, rng).count() <= 1000);
}

TEST_CASE("dispatch: a replayed dead delivery is delivered", "[dispatch][replay]") {
    DispatchRig rig;
    rig.up();
    std::string gate = rig.dir.file("gate");
    std::string id = rig.post(R"({"fail_unless":)" + json::quote(gate) + "}");
    REQUIRE(wait_until([&] { return rig.state_is(id, DeliveryState::dead); }));
    int64_t did = rig.delivery(id).id;
    rig.dir.write("gate", "open");
    // Replaying a delivery that is not dead changes nothing.
    std::string done_id = rig.post();
    REQUIRE(wait_until([&] { return rig.state_is(done_id, DeliveryState::done); }));
    int64_t done_did = rig.delivery(done_id).id;
    CHECK(rig.dispatcher->replay(std::vector<int64_t>{done_did}) == 0);

    CHECK(rig.dispatcher->replay(std::vector<int64_t>{did}) == 1);
    REQUIRE(wait_until([&] { return rig.state_is(id, DeliveryState::done); }));
    auto d = rig.delivery(id);
    CHECK(d.attempts == 1);          // counted from 0 again
    REQUIRE(d.history.size() == 1);  // the failed attempt stays in the history
    CHECK(d.history[0].outcome == "fail");
    CHECK(rig.lines_for(id).size() == 2);
    CHECK(rig.lines_for(done_id).size() == 1);
}

TEST_CASE("dispatch: a batching plugin gets up to its batch size per call", "[dispatch][batch]") {
    DispatchRig rig;
    rig.batch = true;
    rig.concurrency = 1;
    rig.up();
    // Paused, so all 20 are due together when it resumes.
    rig.dispatcher->set_paused("p", true);
    std::vector<std::string> ids;
    for (int i = 0; i < 20; ++i)
        ids.push_back(rig.post(i == 5 ? R"({"fail":true})" : "{}"));
    REQUIRE(wait_until([&] { return rig.dispatcher->status()[0].due == 20; }));
    rig.dispatcher->set_paused("p", false);
    REQUIRE(wait_until([&] {
        for (const auto& id : ids)
            if (rig.state_is(id, DeliveryState::pending)) return false;
        return true;
    }));
    auto got = rig.lines();
    REQUIRE(got.size() == 20);
    std::map<int64_t, int> sizes;
    for (const auto& l : got)
        ++sizes[l.get_int("batch", 0)];
    // One thread, 20 due, batches of 8: 8 + 8 + 4, each item logging its batch size.
    CHECK(sizes[8] == 16);
    CHECK(sizes[4] == 4);
    // Results are per item: one failed, the rest done.
    CHECK(rig.state_is(ids[5], DeliveryState::dead));
    CHECK(rig.state_is(ids[4], DeliveryState::done));
    CHECK(rig.state_is(ids[6], DeliveryState::done));
}

TEST_CASE("dispatch: batch_linger lets a batch fill before the call", "[dispatch][batch]") {
    DispatchRig rig;
    rig.batch = true;
    rig.concurrency = 1;
    rig.dispatch.batch_linger = 60s;  // ends early once 8 are due
    rig.up();
    std::vector<std::string> ids;
    for (int i = 0; i < 8; ++i)
        ids.push_back(rig.post());
    REQUIRE(wait_until([&] { return rig.lines().size() == 8; }));
    for (const auto& l : rig.lines())
        CHECK(l.get_int("batch", 0) == 8);
}

TEST_CASE("dispatch: ordered deliveries with one key go one at a time, in event order",
          "[dispatch][ordering]") {
    DispatchRig rig;
    rig.ordered = true;
    rig.concurrency = 4;
    rig.up();
    rig.dispatcher->set_paused("p", true);
    // row A: the first one needs three attempts; the others must wait for it.
    std::vector<std::string> a, b;
    a.push_back(rig.post(R"({"retry_until":3,"retry_after_ms":40})", "row_A"));
    b.push_back(rig.post(R"({"sleep_ms":5})", "row_B"));
    for (int i = 0; i < 4; ++i) {
        a.push_back(rig.post(R"({"sleep_ms":5})", "row_A"));
        b.push_back(rig.post(R"({"sleep_ms":5})", "row_B"));
    }
    REQUIRE(wait_until([&] { return rig.dispatcher->status()[0].held == 8; }));
    rig.dispatcher->set_paused("p", false);
    REQUIRE(wait_until([&] {
        return rig.state_is(a.back(), DeliveryState::done) &&
               rig.state_is(b.back(), DeliveryState::done);
    }));
    auto got = rig.lines();
    std::vector<std::string> seen_a, seen_b;
    for (const auto& l : got) {
        if (l.get_string("row", "") == "row_A") seen_a.push_back(l.get_string("id", ""));
        if (l.get_string("row", "") == "row_B") seen_b.push_back(l.get_string("id", ""));
    }
    std::vector<std::string> want_a = {a[0], a[0], a[0], a[1], a[2], a[3], a[4]};
    CHECK(seen_a == want_a);
    CHECK(seen_b == b);
    // row B did not wait for row A's retries.
    size_t b_done_at = 0, a0_done_at = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        if (got[i].get_string("id", "") == b.back()) b_done_at = i;
        if (got[i].get_string("id", "") == a[0]) a0_done_at = i;
    }
    CHECK(b_done_at < a0_done_at);
}

TEST_CASE("dispatch: pause holds deliveries, resume hands them over, and pause survives a restart",
          "[dispatch][pause]") {
    DispatchRig rig;
    rig.up();
    rig.dispatcher->set_paused("p", true);
    std::string id = rig.post();
    REQUIRE(wait_until([&] { return rig.dispatcher->status()[0].due == 1; }));
    CHECK(rig.lines().empty());
    CHECK(rig.dispatcher->status()[0].paused);
    rig.down();
    rig.up();
    CHECK(rig.dispatcher->status()[0].paused);
    CHECK(rig.dispatcher->status()[0].due == 1);  // recovered from the store
    CHECK(rig.lines().empty());
    rig.dispatcher->set_paused("p", false);
    REQUIRE(wait_until([&] { return rig.state_is(id, DeliveryState::done); }));
    CHECK(rig.lines_for(id).size() == 1);
}

TEST_CASE("dispatch: the plugin key-value store survives a restart", "[dispatch][kv]") {
    DispatchRig rig;
    rig.up();
    std::string put = rig.post(R"({"kv_put":{"cursor":"42","gone":"x"}})");
    REQUIRE(wait_until([&] { return rig.state_is(put, DeliveryState::done); }));
    std::string del = rig.post(R"({"kv_delete":"gone"})");
    REQUIRE(wait_until([&] { return rig.state_is(del, DeliveryState::done); }));
    rig.down();
    rig.up();
    std::string get = rig.post(R"({"kv_get":"cursor"})");
    std::string gone = rig.post(R"({"kv_get":"gone"})");
    REQUIRE(wait_until([&] {
        return rig.state_is(get, DeliveryState::done) && rig.state_is(gone, DeliveryState::done);
    }));
    CHECK(rig.lines_for(get).at(0).get_string("kv", "") == "42");
    CHECK(rig.lines_for(gone).at(0).find("kv")->is_null());
    // Values are per plugin: another plugin name sees nothing.
    CHECK(rig.store->kv_get("other", "cursor") == std::nullopt);
    CHECK(rig.store->kv_get("p", "cursor") == std::optional<std::string>("42"));
}

TEST_CASE("dispatch: deliver_again_at re-delivers at its time, across a restart",
          "[dispatch][again]") {
    DispatchRig rig;
    rig.up();
    std::string id = rig.post(R"({"again_in_ms":1500})");
    REQUIRE(wait_until([&] { return rig.lines_for(id).size() == 1; }));
    auto first = rig.lines_for(id)[0];
    CHECK(first.get_bool("scheduled", false));
    rig.down();  // the scheduled delivery is in the store, not only in memory
    rig.up();
    REQUIRE(wait_until([&] { return rig.lines_for(id).size() == 2; }));
    auto second = rig.lines_for(id)[1];
    CHECK_FALSE(second.get_bool("scheduled", true));
    CHECK(second.get_int("t", 0) - first.get_int("t", 0) >= 1500);
    auto ds = rig.store->event_deliveries(id);
    REQUIRE(ds.size() == 2);  // the original and the scheduled one
    REQUIRE(wait_until([&] {
        auto v = rig.store->event_deliveries(id);
        return v[0].state == DeliveryState::done && v[1].state == DeliveryState::done;
    }));
}

TEST_CASE("dispatch: a call over its time budget is counted and logged", "[dispatch][budget]") {
    DispatchRig rig;
    rig.dispatch.call_timeout = 50ms;
    rig.up();
    std::string id = rig.post(R"({"sleep_ms":400})");
    REQUIRE(wait_until([&] { return rig.state_is(id, DeliveryState::done); }));
    CHECK(rig.metric("clayhook_dispatch_call_overruns_total") == 1);
    rig.down();
    CHECK(rig.log_out.str().find("past dispatch.call_timeout") != std::string::npos);
}

TEST_CASE("dispatch: a hung plugin holds only its own threads", "[dispatch]") {
    DispatchRig rig;
    rig.concurrency = 2;
    rig.up();
    std::string gate = rig.dir.file("release");
    // Two calls block both threads of this plugin; the third waits, not lost.
    std::string b1 = rig.post(R"({"block":)" + json::quote(gate) + "}");
    std::string b2 = rig.post(R"({"block":)" + json::quote(gate) + "}");
    REQUIRE(wait_until([&] { return rig.dispatcher->status()[0].in_flight == 2; }));
    std::string c = rig.post();
    REQUIRE(wait_until([&] { return rig.dispatcher->status()[0].due == 1; }));
    CHECK(rig.lines_for(c).empty());
    rig.dir.write("release", "");
    CHECK(wait_until([&] {
        return rig.state_is(c, DeliveryState::done) && rig.state_is(b1, DeliveryState::done) &&
               rig.state_is(b2, DeliveryState::done);
    }));
}

TEST_CASE("dispatch: a replayed delivery counts max_age from the replay", "[dispatch][replay]") {
    DispatchRig rig;
    rig.dispatch.retry.max_age = 1s;
    rig.up();
    // Received ten seconds ago: its first retry is already past max_age.
    std::string id = rig.post(R"({"retry_until":2})", "", unix_ms() - 10'000);
    REQUIRE(wait_until([&] { return rig.state_is(id, DeliveryState::dead); }));
    CHECK(rig.delivery(id).last_error.find("past max_age") != std::string::npos);
    CHECK(rig.dispatcher->replay(std::vector<int64_t>{rig.delivery(id).id}) == 1);
    // Counted from the replay, the retry is well inside max_age.
    REQUIRE(wait_until([&] { return rig.state_is(id, DeliveryState::done); }));
    CHECK(rig.delivery(id).attempts == 2);
}

TEST_CASE("dispatch: asking again for an event moves its pending re-delivery, not a second one",
          "[dispatch][again]") {
    DispatchRig rig;
    rig.up();
    rig.dispatcher->set_paused("p", true);  // nothing runs: only the store and the queues count
    std::string id = rig.post();
    const int64_t later = unix_ms() + 3'600'000;
    auto first = rig.store->schedule_again(id, "p", later, {});
    REQUIRE(first);
    CHECK(first->created);
    auto again = rig.store->schedule_again(id, "p", later + 1000, {});
    REQUIRE(again);
    CHECK_FALSE(again->created);
    CHECK(again->ref.id == first->ref.id);
    CHECK(again->ref.due_ms == later + 1000);
    // While the scheduled one is being handled, a new request makes a new one.
    std::vector<int64_t> busy = {first->ref.id};
    auto third = rig.store->schedule_again(id, "p", later, busy);
    REQUIRE(third);
    CHECK(third->created);
    CHECK(third->ref.id != first->ref.id);
    CHECK(rig.store->event_deliveries(id).size() == 3);  // the original and two scheduled
    CHECK_FALSE(rig.store->schedule_again("evt_00000000000000000000000", "p", later, {}));

    // Through the host service: the plugin's second ask moves the first.
    CHECK(rig.dispatcher->deliver_again_at("p", id, later + 5000) == CLAYHOOK_OK);
    CHECK(rig.store->event_deliveries(id).size() == 3);
    CHECK(rig.dispatcher->deliver_again_at("p", "nope", later) == CLAYHOOK_ERR_INVALID);
    CHECK(rig.dispatcher->deliver_again_at("p", "evt_00000000000000000000000", later) ==
          CLAYHOOK_NOT_FOUND);
}

TEST_CASE("dispatch: switching ordering on and off rebuilds what waits behind which key",
          "[dispatch][ordering]") {
    DispatchRig rig;
    rig.concurrency = 4;
    rig.up();  // unordered
    rig.dispatcher->set_paused("p", true);
    rig.ordered = true;  // the events carry row_id as their ordering key from here
    std::vector<std::string> a;
    for (int i = 0; i < 3; ++i)
        a.push_back(rig.post(R"({"sleep_ms":5})", "row_A"));
    std::string b = rig.post("{}", "row_B");
    REQUIRE(wait_until([&] { return rig.dispatcher->status()[0].due == 4; }));

    auto target = [&](bool ordered) {
        DispatchTarget t;
        t.instance = rig.inst;
        t.retry = rig.dispatch.retry;
        t.concurrency = 4;
        t.ordered = ordered;
        return std::vector<DispatchTarget>{t};
    };
    rig.dispatcher->reconfigure(rig.dispatch, target(true));
    auto st = rig.dispatcher->status()[0];
    CHECK(st.ordered);
    CHECK(st.due == 2);   // the first of row_A, and row_B
    CHECK(st.held == 2);  // the other two of row_A
    rig.dispatcher->reconfigure(rig.dispatch, target(false));
    st = rig.dispatcher->status()[0];
    CHECK(st.due == 4);
    CHECK(st.held == 0);
    rig.dispatcher->reconfigure(rig.dispatch, target(true));
    rig.dispatcher->set_paused("p", false);
    REQUIRE(wait_until([&] {
        return rig.state_is(a.back(), DeliveryState::done) && rig.state_is(b, DeliveryState::done);
    }));
    std::vector<std::string> seen_a;
    for (const auto& l : rig.lines())
        if (l.get_string("row", "") == "row_A") seen_a.push_back(l.get_string("id", ""));
    CHECK(seen_a == a);
}
