// The C++ SDK's generated exports, driven through the C descriptor the way
// the host drives them, with the host's real services table.
#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "plugins/HostServices.h"

#include <clayhook/plugin.hpp>

#include <catch2/catch.hpp>

#include <sstream>
#include <string>

namespace {

class Minimal {
  public:
    static constexpr const char* name = "minimal";
    static constexpr const char* version = "3.1.4";
    static constexpr const char* events[] = {"enrichment.completed", "workflow.*"};
    Minimal(clayhook::Host& host, const clayhook::json::Value& config)
        : host_(host), prefix_(config.get_string("prefix", "")) {}
    clayhook::Result handle(const clayhook::Event& e) {
        host_.warn(prefix_ + std::string(e.type));
        if (e.attempt > 2) return clayhook::Result::fail(std::string(e.idempotency_key));
        return clayhook::Result::retry(std::string(1500, 'x'), std::chrono::seconds(3));
    }

  private:
    clayhook::Host& host_;
    std::string prefix_;
};

class Full {
  public:
    static constexpr const char* name = "full";
    static constexpr const char* version = "1.0.0";
    static constexpr const char* description = "batches, limited";
    static constexpr const char* events[] = {"*"};
    static constexpr uint32_t max_batch_size = 7;
    static constexpr uint32_t max_concurrency = 1;
    Full(clayhook::Host&, const clayhook::json::Value&) {}
    clayhook::Result handle(const clayhook::Event&) { return clayhook::Result::done(); }
    void handle_batch(std::span<const clayhook::Event> in, std::span<clayhook::Result> out) {
        for (size_t i = 0; i < in.size(); ++i)
            out[i] = clayhook::Result::retry(std::string(in[i].id), std::chrono::milliseconds(5));
    }
};

}  // namespace

TEST_CASE("the SDK fills the descriptor from the class", "[sdk]") {
    const auto& d = clayhook::sdk::Exports<Minimal>::descriptor;
    CHECK(d.abi_major == CLAYHOOK_ABI_MAJOR);
    CHECK(d.abi_minor == CLAYHOOK_ABI_MINOR);
    CHECK(d.struct_size == sizeof(clayhook_plugin_descriptor));
    CHECK(std::string(d.name) == "minimal");
    CHECK(std::string(d.version) == "3.1.4");
    CHECK(d.description == nullptr);
    REQUIRE(d.event_pattern_count == 2);
    CHECK(std::string(d.event_patterns[1]) == "workflow.*");
    CHECK(d.max_batch_size == 0);
    CHECK(d.handle_batch == nullptr);

    const auto& f = clayhook::sdk::Exports<Full>::descriptor;
    CHECK(std::string(f.description) == "batches, limited");
    CHECK(f.max_batch_size == 7);
    CHECK(f.max_concurrency == 1);
    CHECK(f.handle_batch != nullptr);
}

TEST_CASE("the SDK's exports create, handle and destroy through the C ABI", "[sdk]") {
    std::ostringstream out;
    clayhook::Logger log(out, clayhook::Level::debug);
    clayhook::Metrics metrics;
    clayhook::HostServices services("m1", log, metrics);
    const auto& d = clayhook::sdk::Exports<Minimal>::descriptor;
    std::string cfg = R"({"prefix":"type="})";
    char err[64] = {0};
    void* inst = d.create(services.api(), clayhook_str{cfg.data(), cfg.size()}, err, sizeof err);
    REQUIRE(inst != nullptr);

    std::string type = "enrichment.completed", key = "row_1|t";
    clayhook_event ev{};
    ev.type = {type.data(), type.size()};
    ev.idempotency_key = {key.data(), key.size()};
    ev.attempt = 1;
    clayhook_result r{};
    d.handle(inst, &ev, &r);
    CHECK(r.status == CLAYHOOK_RETRY);
    CHECK(r.retry_after_ms == 3000);
    // A reason longer than the host's buffer is cut, NUL-terminated.
    CHECK(std::string(r.reason).size() == CLAYHOOK_REASON_MAX - 1);
    CHECK_THAT(out.str(), Catch::Contains("msg=\"type=enrichment.completed\""));
    ev.attempt = 3;
    d.handle(inst, &ev, &r);
    CHECK(r.status == CLAYHOOK_FAIL);
    CHECK(std::string(r.reason) == "row_1|t");
    d.destroy(inst);

    // Bad config: create refuses and says why in the caller's buffer.
    std::string bad = "[1,";
    CHECK(d.create(services.api(), clayhook_str{bad.data(), bad.size()}, err, sizeof err) ==
          nullptr);
    CHECK(std::string(err).size() > 0);
    CHECK(std::string(err).size() < sizeof err);
}

TEST_CASE("the SDK's batch export answers per item", "[sdk]") {
    std::ostringstream out;
    clayhook::Logger log(out);
    clayhook::Metrics metrics;
    clayhook::HostServices services("f", log, metrics);
    const auto& d = clayhook::sdk::Exports<Full>::descriptor;
    char err[64];
    void* inst = d.create(services.api(), clayhook_str{nullptr, 0}, err, sizeof err);
    REQUIRE(inst != nullptr);
    std::string ids[3] = {"a", "b", "c"};
    clayhook_event evs[3] = {};
    for (int i = 0; i < 3; ++i)
        evs[i].id = {ids[i].data(), ids[i].size()};
    clayhook_result rs[3] = {};
    d.handle_batch(inst, evs, 3, rs);
    for (int i = 0; i < 3; ++i) {
        CHECK(rs[i].status == CLAYHOOK_RETRY);
        CHECK(rs[i].retry_after_ms == 5);
        CHECK(std::string(rs[i].reason) == ids[i]);
    }
    d.destroy(inst);
}
