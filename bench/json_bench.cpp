// The JSON decision of the SDK (issue: hand plugin authors nlohmann::json, or
// keep <clayhook/json.hpp>), measured: parse the intake benchmark's bodies
// (gen-deliveries' ~0.5 KB enrichment.completed events) and read the fields
// the intake reads (event, row_id, timestamp), with both libraries, and a
// plugin-side walk (data.company.domain). Prints ns per body for each.
// Also the host's own intake reader (host/intake/JsonFields: validate the
// whole body, find the same three fields, no tree), compiled in from its
// source, and the heap allocations per body of each way.
//   json-bench [N]   (default 200000)
#include <clayhook/json.hpp>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "intake/JsonFields.h"  // the host's extractor, compiled into this target

// Every heap allocation of the program, counted.
namespace {
std::atomic<unsigned long> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
// Out of line: inlined, g++ takes the free() for a mismatch with new.
[[gnu::noinline]] void operator delete(void* p) noexcept {
    std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}

namespace {

std::vector<std::string> bodies(long n) {
    std::vector<std::string> out;
    out.reserve(static_cast<size_t>(n));
    char row[32];
    for (long i = 0; i < n; ++i) {
        std::snprintf(row, sizeof row, "%08ld", i);
        std::string r = row;
        out.push_back(
            R"({"event":"enrichment.completed","table_id":"t_abc123","row_id":"row_)" + r +
            R"(","timestamp":"2026-11-26T12:00:42.042Z","data":{"email":"person)" + r +
            R"(@example.com","full_name":"Person )" + r + R"(","company":{"name":"Company )" + r +
            R"(","domain":"company)" + r +
            R"(.com","industry":"Software","employee_count":1200},"linkedin":{"url":"https://www.linkedin.com/in/person)" +
            r +
            R"(","title":"VP Sales"},"enrichment":{"provider":"clearbit","column":"Company Enrichment","credits_used":2}}})");
    }
    return out;
}

template <class F>
double ns_per(const std::vector<std::string>& in, F&& f) {
    size_t sink = 0;
    for (size_t i = 0; i < std::min<size_t>(in.size(), 2000); ++i)  // warm up
        sink += f(in[i]);
    auto t0 = std::chrono::steady_clock::now();
    for (const auto& b : in)
        sink += f(b);
    auto t1 = std::chrono::steady_clock::now();
    if (sink == 42) std::puts("");  // keep the work
    return std::chrono::duration<double, std::nano>(t1 - t0).count() /
           static_cast<double>(in.size());
}

// Heap allocations per body of f, over the first (up to) 1000 bodies.
template <class F>
double allocations_per(const std::vector<std::string>& in, F&& f) {
    const size_t n = std::min<size_t>(in.size(), 1000);
    size_t sink = 0;
    const unsigned long before = g_allocations.load();
    for (size_t i = 0; i < n; ++i)
        sink += f(in[i]);
    const unsigned long after = g_allocations.load();
    if (sink == 42) std::puts("");
    return static_cast<double>(after - before) / static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
    const long n = argc > 1 ? std::atol(argv[1]) : 200000;
    const auto in = bodies(n);
    size_t bytes = 0;
    for (const auto& b : in)
        bytes += b.size();

    auto own_intake_f = [](const std::string& b) {
        auto v = clayhook::json::parse(b);
        return v.at_path("event")->as_string().size() + v.at_path("row_id")->as_string().size() +
               v.at_path("timestamp")->as_string().size();
    };
    const double own_intake = ns_per(in, own_intake_f);
    // The host's reader as the intake uses it: compiled paths (once per
    // config), a fresh result vector per body; spans only, then with the
    // three strings decoded (the intake decodes the event type).
    const clayhook::intake::FieldPaths paths({"event", "row_id", "timestamp"});
    auto fields_spans_f = [&paths](const std::string& b) {
        std::vector<clayhook::intake::Field> f;
        clayhook::intake::JsonError e;
        if (!clayhook::intake::extract(b, paths, f, e)) std::abort();
        return f[0].raw(b).size() + f[1].raw(b).size() + f[2].raw(b).size();
    };
    auto fields_strings_f = [&paths](const std::string& b) {
        std::vector<clayhook::intake::Field> f;
        clayhook::intake::JsonError e;
        if (!clayhook::intake::extract(b, paths, f, e)) std::abort();
        return clayhook::intake::string_value(b, f[0]).size() +
               clayhook::intake::string_value(b, f[1]).size() +
               clayhook::intake::string_value(b, f[2]).size();
    };
    const double fields_spans = ns_per(in, fields_spans_f);
    const double fields_strings = ns_per(in, fields_strings_f);
    const double nl_intake = ns_per(in, [](const std::string& b) {
        auto v = nlohmann::json::parse(b);
        return v["event"].get_ref<const std::string&>().size() +
               v["row_id"].get_ref<const std::string&>().size() +
               v["timestamp"].get_ref<const std::string&>().size();
    });
    const double own_plugin = ns_per(in, [](const std::string& b) {
        auto v = clayhook::json::parse(b);
        return v.get_string("event", "").size() +
               v.at_path("data.company.domain")->as_string().size();
    });
    const double nl_plugin = ns_per(in, [](const std::string& b) {
        auto v = nlohmann::json::parse(b);
        return v.value("event", std::string()).size() +
               v["data"]["company"]["domain"].get_ref<const std::string&>().size();
    });
    std::printf("bodies: %ld, %.0f bytes each\n", n, static_cast<double>(bytes) / n);
    std::printf(
        "intake fields (event,row_id,timestamp): clayhook::json %.0f ns, nlohmann %.0f ns "
        "(nlohmann/own %.2f)\n",
        own_intake, nl_intake, nl_intake / own_intake);
    std::printf(
        "plugin walk (data.company.domain):      clayhook::json %.0f ns, nlohmann %.0f ns "
        "(nlohmann/own %.2f)\n",
        own_plugin, nl_plugin, nl_plugin / own_plugin);
    std::printf(
        "intake fields, host reader (intake::extract): %.0f ns spans, %.0f ns with the strings "
        "decoded (clayhook::json/extract %.2f)\n",
        fields_spans, fields_strings, own_intake / fields_spans);
    std::printf(
        "heap allocations per body: clayhook::json parse %.1f, intake::extract %.1f (spans), "
        "%.1f (strings decoded)\n",
        allocations_per(in, own_intake_f), allocations_per(in, fields_spans_f),
        allocations_per(in, fields_strings_f));
    return 0;
}
