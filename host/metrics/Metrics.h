#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace clayhook {

// A counter or gauge value. Lock-free: the data plane holds a reference and
// updates it without touching the registry's lock.
class MetricValue {
  public:
    void add(double d) { v_.fetch_add(d, std::memory_order_relaxed); }
    void set(double d) { v_.store(d, std::memory_order_relaxed); }
    double get() const { return v_.load(std::memory_order_relaxed); }

  private:
    std::atomic<double> v_{0};
};

// A Prometheus histogram with fixed upper bounds. Lock-free observe().
class Histogram {
  public:
    explicit Histogram(std::vector<double> bounds);
    void observe(double v);
    const std::vector<double>& bounds() const { return bounds_; }
    // Cumulative counts per bound (then +Inf), the sum and the count.
    std::vector<uint64_t> cumulative() const;
    double sum() const { return sum_.load(std::memory_order_relaxed); }
    uint64_t count() const { return count_.load(std::memory_order_relaxed); }

  private:
    std::vector<double> bounds_;
    std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1
    std::atomic<double> sum_{0};
    std::atomic<uint64_t> count_{0};
};

// The registry, rendered in the Prometheus text format. Series are keyed by
// name and a canonical label string (`a="x",b="y"`); the references it hands
// out stay valid for the registry's lifetime.
class Metrics {
  public:
    MetricValue& counter(std::string_view name, std::string_view labels = {});
    MetricValue& gauge(std::string_view name, std::string_view labels = {});
    Histogram& histogram(std::string_view name, std::string_view labels,
                         const std::vector<double>& bounds);

    void counter_add(std::string_view name, std::string_view labels, double delta) {
        counter(name, labels).add(delta);
    }
    void gauge_set(std::string_view name, std::string_view labels, double value) {
        gauge(name, labels).set(value);
    }
    void set_help(std::string_view name, std::string_view help);

    double value(std::string_view name, std::string_view labels) const;  // 0 when absent
    // The sum over the series of `name` whose label string contains
    // `label` (e.g. `outcome="done"`; "" = every series). 0 when none.
    double sum(std::string_view name, std::string_view label = {}) const;
    std::string render() const;

    // "k=v,k2=v2" → `k="v",k2="v2"` with values escaped; throws
    // std::invalid_argument on a malformed list or label name.
    static std::string canonical_labels(std::string_view kv_list);
    static bool valid_name(std::string_view name);

  private:
    struct Family {
        std::string type;
        std::string help;
        std::map<std::string, std::unique_ptr<MetricValue>> values;
        std::map<std::string, std::unique_ptr<Histogram>> histograms;
    };
    Family& family(std::string_view name, const char* type);
    mutable std::mutex mu_;
    std::map<std::string, Family, std::less<>> families_;
};

}  // namespace clayhook
