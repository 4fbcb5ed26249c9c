#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace clayhook {

// A registry of counters and gauges, rendered in the Prometheus text format.
// Series are keyed by name and a canonical label string (`a="x",b="y"`).
// The data plane will keep its hot counters in atomics of its own and publish
// them here; this registry is for everything that is not per request.
class Metrics {
  public:
    void counter_add(std::string_view name, std::string_view labels, double delta);
    void gauge_set(std::string_view name, std::string_view labels, double value);
    void set_help(std::string_view name, std::string_view type, std::string_view help);

    double value(std::string_view name, std::string_view labels) const;  // 0 when absent
    std::string render() const;

    // "k=v,k2=v2" → `k="v",k2="v2"` with values escaped; throws
    // std::invalid_argument on a malformed list or label name.
    static std::string canonical_labels(std::string_view kv_list);
    static bool valid_name(std::string_view name);

  private:
    struct Family {
        std::string type = "untyped";
        std::string help;
        std::map<std::string, double> series;  // labels → value
    };
    mutable std::mutex mu_;
    std::map<std::string, Family, std::less<>> families_;
};

}  // namespace clayhook
