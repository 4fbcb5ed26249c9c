// The bundled retry-scheduler, loaded as a real .so behind the real
// dispatcher and store (its key-value store and deliver_again_at are the
// host's), calling a fake Clay API over a real socket.
#include "dispatch/DispatchRig.h"
#include "fakes/FakeClayApi.h"

using namespace clayhook;
using namespace clayhook::test;
using namespace std::chrono_literals;

namespace {

struct SchedulerRig : DispatchRig {
    FakeClayApi clay;
    explicit SchedulerRig(
        const std::string& backoff = R"("backoff_base_ms":50,"backoff_cap_ms":200)",
        const std::string& key = "") {
        library = std::string(kBundledPluginDir) + "/retry-scheduler.so";
        plugin.config_json = R"({"clay_api":")" + clay.base_url() + R"(","api_key":")" +
                             (key.empty() ? clay.api_key() : key) + R"(",)" + backoff + "}";
        // api_key is a declared secret: the host takes it only as a reference
        // (${VAR}, file:PATH), which the config loader would have resolved.
        plugin.config_keys["api_key"] = {Position{}, true};
        dispatch.retry.max_attempts = 5;
    }

    // The plugin's calls end before the fake Clay API (a member) goes.
    ~SchedulerRig() { down(); }

    std::string failed(const std::string& row, const std::string& code = "PROVIDER_TIMEOUT",
                       const std::string& column = "Email Finder") {
        std::string err = R"({"code":")" + code + R"(","message":"it broke")" +
                          (column.empty() ? "" : R"(,"column":")" + column + "\"") + "}";
        return post_body("enrichment.failed",
                         R"({"event":"enrichment.failed","table_id":"t_abc123","row_id":")" + row +
                             R"(","timestamp":")" + std::to_string(++counter) + R"(","error":)" +
                             err + "}");
    }
    std::string completed(const std::string& row) {
        return post_body("enrichment.completed",
                         R"({"event":"enrichment.completed","table_id":"t_abc123","row_id":")" +
                             row + R"(","timestamp":")" + std::to_string(++counter) +
                             R"(","data":{"email":"a@b.com"}})");
    }
    // Enrich calls the fake received for this row.
    size_t reruns(const std::string& row) const {
        size_t n = 0;
        for (const auto& r : clay.requests())
            if (r.path == "/v1/tables/t_abc123/rows/" + row + "/enrich") ++n;
        return n;
    }
    bool all_finished(const std::string& event_id) {
        auto ds = store->event_deliveries(event_id);
        if (ds.empty()) return false;
        for (const auto& d : ds)
            if (d.state == DeliveryState::pending) return false;
        return true;
    }
    double counter_of(const std::string& name) {
        return metrics.value("clayhook_plugin_" + name, "plugin=\"p\"");
    }
};

}  // namespace

TEST_CASE("retry-scheduler: a row re-run after two failures, then recovered", "[retry-scheduler]") {
    SchedulerRig rig;
    rig.up();
    std::string f1 = rig.failed("row_1");
    REQUIRE(wait_until([&] { return rig.reruns("row_1") == 1; }));
    auto req = rig.clay.requests().back();
    CHECK(req.method == "POST");
    CHECK(req.authorization == "Bearer " + rig.clay.api_key());
    CHECK(json::parse(req.body).get_string("column", "") == "Email Finder");
    REQUIRE(wait_until([&] { return rig.all_finished(f1); }));
    // Clay runs it again and it fails again: a second re-run, later.
    std::string f2 = rig.failed("row_1");
    REQUIRE(wait_until([&] { return rig.reruns("row_1") == 2; }));
    REQUIRE(wait_until([&] { return rig.all_finished(f2); }));
    // Then it succeeds: the row is recovered and its state gone.
    std::string ok = rig.completed("row_1");
    REQUIRE(wait_until([&] { return rig.all_finished(ok); }));
    CHECK(rig.counter_of("scheduled_total") == 2);
    CHECK(rig.counter_of("rerun_total") == 2);
    CHECK(rig.counter_of("recovered_total") == 1);
    CHECK(rig.store->kv_get("p", "row:t_abc123/row_1") == std::nullopt);
    // Every delivery done: the originals and the two scheduled ones.
    for (const auto& id : {f1, f2, ok})
        for (const auto& d : rig.store->event_deliveries(id))
            CHECK(d.state == DeliveryState::done);
}

TEST_CASE("retry-scheduler: a final error code is a dead letter with Clay's error, no re-run",
          "[retry-scheduler]") {
    SchedulerRig rig;
    rig.up();
    std::string id = rig.failed("row_2", "INSUFFICIENT_CREDITS");
    REQUIRE(wait_until([&] { return rig.state_is(id, DeliveryState::dead); }));
    CHECK(rig.delivery(id).last_error == "failed: final error code INSUFFICIENT_CREDITS: it broke");
    CHECK(rig.reruns("row_2") == 0);
    CHECK(rig.counter_of("given_up_total") == 1);
    // A code in neither list is not retried either (retry_unknown_codes: false).
    std::string odd = rig.failed("row_3", "SOMETHING_NEW");
    REQUIRE(wait_until([&] { return rig.state_is(odd, DeliveryState::dead); }));
    CHECK(rig.delivery(odd).last_error.find("not in retryable_codes") != std::string::npos);
}

TEST_CASE("retry-scheduler: a later success cancels the pending re-run", "[retry-scheduler]") {
    SchedulerRig rig(R"("backoff_base_ms":1500,"backoff_cap_ms":1500)");
    rig.up();
    std::string f = rig.failed("row_4");
    REQUIRE(wait_until([&] { return rig.store->event_deliveries(f).size() == 2; }));
    std::string ok = rig.completed("row_4");
    REQUIRE(wait_until([&] { return rig.all_finished(ok); }));
    // The scheduled delivery still comes, and does nothing.
    REQUIRE(wait_until([&] { return rig.all_finished(f); }, 10s));
    CHECK(rig.reruns("row_4") == 0);
    CHECK(rig.counter_of("cancelled_total") == 1);
    CHECK(rig.counter_of("rerun_total") == 0);
}

TEST_CASE("retry-scheduler: a schedule survives a restart of the host", "[retry-scheduler]") {
    SchedulerRig rig(R"("backoff_base_ms":1000,"backoff_cap_ms":1000)");
    rig.up();
    std::string f = rig.failed("row_5");
    REQUIRE(wait_until([&] { return rig.store->event_deliveries(f).size() == 2; }));
    CHECK(rig.reruns("row_5") == 0);
    rig.down();  // the state and the scheduled delivery are in the store
    rig.up();
    REQUIRE(wait_until([&] { return rig.reruns("row_5") == 1; }, 10s));
    REQUIRE(wait_until([&] { return rig.all_finished(f); }));
    auto state = rig.store->kv_get("p", "row:t_abc123/row_5");
    REQUIRE(state);
    CHECK(json::parse(*state).get_int("attempts", 0) == 1);
}

TEST_CASE("retry-scheduler: 429 waits as Retry-After says, exhausted attempts give up",
          "[retry-scheduler]") {
    SchedulerRig rig(R"("backoff_base_ms":50,"backoff_cap_ms":200,"max_attempts":1)");
    rig.up();
    rig.clay.rate_limit_next(1, "1");
    std::string f = rig.failed("row_6");
    REQUIRE(wait_until([&] { return rig.reruns("row_6") == 2; }, 10s));
    auto reqs = rig.clay.requests();
    REQUIRE(reqs.size() == 2);
    CHECK(reqs[1].at - reqs[0].at >= 1s);
    REQUIRE(wait_until([&] { return rig.all_finished(f); }));
    // One re-run was the maximum: the next failure is a dead letter.
    std::string again = rig.failed("row_6");
    REQUIRE(wait_until([&] { return rig.state_is(again, DeliveryState::dead); }));
    CHECK(rig.delivery(again).last_error.find("gave up after 1 re-run(s)") != std::string::npos);
    CHECK(rig.reruns("row_6") == 2);
}

TEST_CASE("retry-scheduler: Clay refusing the re-run is a dead letter carrying its error",
          "[retry-scheduler]") {
    SchedulerRig rig(R"("backoff_base_ms":50,"backoff_cap_ms":200)", "a-revoked-key");
    rig.up();
    std::string f = rig.failed("row_7");
    auto dead_scheduled = [&] {
        auto ds = rig.store->event_deliveries(f);
        return ds.size() == 2 && ds[1].state == DeliveryState::dead;
    };
    REQUIRE(wait_until(dead_scheduled));
    auto ds = rig.store->event_deliveries(f);
    CHECK(ds[1].last_error ==
          R"(failed: Clay refused the re-run (401): {"error":"invalid_api_key"})");
    CHECK(rig.reruns("row_7") == 1);
    // Nothing to re-run without a column: a dead letter too, without a call.
    std::string nocol = rig.failed("row_8", "PROVIDER_TIMEOUT", "");
    REQUIRE(wait_until([&] {
        auto v = rig.store->event_deliveries(nocol);
        return v.size() == 2 && v[1].state == DeliveryState::dead;
    }));
    CHECK(rig.store->event_deliveries(nocol)[1].last_error.find("no column to re-run") !=
          std::string::npos);
    CHECK(rig.reruns("row_8") == 0);
}

TEST_CASE("retry-scheduler: refuses a config without an API key", "[retry-scheduler]") {
    TempDir stage;
    std::ostringstream log_out;
    Logger log(log_out, Level::info);
    Metrics metrics;
    auto lib = PluginLibrary::load("r", std::string(kBundledPluginDir) + "/retry-scheduler.so",
                                   stage.path().string());
    PluginConfig pc;
    pc.name = "r";
    pc.config_json = "{}";
    try {
        PluginInstance::create(lib, pc, log, metrics);
        FAIL("created without a key");
    } catch (const PluginError& e) {
        // The host refuses it, from the plugin's declared config (ABI 1.1).
        CHECK_THAT(std::string(e.what()), Catch::Contains("config.api_key: is required"));
    }
}
