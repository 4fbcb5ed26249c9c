#include "metrics/Metrics.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace clayhook {

namespace {
bool name_char(char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

std::string format_value(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}
}  // namespace

bool Metrics::valid_name(std::string_view name) {
    if (name.empty()) return false;
    for (size_t i = 0; i < name.size(); ++i)
        if (!name_char(name[i], i == 0) && name[i] != ':') return false;
    return true;
}

std::string Metrics::canonical_labels(std::string_view list) {
    std::map<std::string, std::string> labels;
    while (!list.empty()) {
        size_t comma = list.find(',');
        std::string_view pair = list.substr(0, comma);
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
        if (pair.empty()) continue;
        size_t eq = pair.find('=');
        if (eq == std::string_view::npos)
            throw std::invalid_argument("label '" + std::string(pair) + "' has no '='");
        std::string key(pair.substr(0, eq));
        if (!valid_name(key) || key.find(':') != std::string::npos)
            throw std::invalid_argument("bad label name '" + key + "'");
        labels[key] = std::string(pair.substr(eq + 1));
    }
    std::string out;
    for (const auto& [k, v] : labels) {
        if (!out.empty()) out += ',';
        out += k + "=\"";
        for (char c : v) {
            if (c == '\\' || c == '"') out += '\\';
            if (c == '\n') {
                out += "\\n";
                continue;
            }
            out += c;
        }
        out += '"';
    }
    return out;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
    for (size_t i = 0; i <= bounds_.size(); ++i)
        buckets_[i].store(0);
}

void Histogram::observe(double v) {
    size_t i = 0;
    while (i < bounds_.size() && v > bounds_[i])
        ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(v, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::cumulative() const {
    std::vector<uint64_t> out(bounds_.size() + 1);
    uint64_t acc = 0;
    for (size_t i = 0; i <= bounds_.size(); ++i)
        out[i] = acc += buckets_[i].load();
    return out;
}

Metrics::Family& Metrics::family(std::string_view name, const char* type) {
    auto it = families_.find(name);
    if (it == families_.end()) it = families_.emplace(std::string(name), Family{}).first;
    if (it->second.type.empty()) it->second.type = type;
    return it->second;
}

MetricValue& Metrics::counter(std::string_view name, std::string_view labels) {
    std::lock_guard lock(mu_);
    auto& slot = family(name, "counter").values[std::string(labels)];
    if (!slot) slot = std::make_unique<MetricValue>();
    return *slot;
}

MetricValue& Metrics::gauge(std::string_view name, std::string_view labels) {
    std::lock_guard lock(mu_);
    auto& slot = family(name, "gauge").values[std::string(labels)];
    if (!slot) slot = std::make_unique<MetricValue>();
    return *slot;
}

Histogram& Metrics::histogram(std::string_view name, std::string_view labels,
                              const std::vector<double>& bounds) {
    std::lock_guard lock(mu_);
    auto& slot = family(name, "histogram").histograms[std::string(labels)];
    if (!slot) slot = std::make_unique<Histogram>(bounds);
    return *slot;
}

void Metrics::set_help(std::string_view name, std::string_view help) {
    std::lock_guard lock(mu_);
    auto it = families_.find(name);
    if (it == families_.end()) it = families_.emplace(std::string(name), Family{}).first;
    it->second.help = std::string(help);
}

double Metrics::value(std::string_view name, std::string_view labels) const {
    std::lock_guard lock(mu_);
    auto it = families_.find(name);
    if (it == families_.end()) return 0;
    auto s = it->second.values.find(std::string(labels));
    return s == it->second.values.end() ? 0 : s->second->get();
}

double Metrics::sum(std::string_view name, std::string_view label) const {
    std::lock_guard lock(mu_);
    auto it = families_.find(name);
    if (it == families_.end()) return 0;
    double total = 0;
    for (const auto& [labels, v] : it->second.values)
        if (label.empty() || labels.find(label) != std::string::npos) total += v->get();
    return total;
}

std::string Metrics::render() const {
    std::lock_guard lock(mu_);
    std::string out;
    auto with = [](const std::string& labels, const std::string& extra) {
        if (labels.empty()) return "{" + extra + "}";
        return "{" + labels + "," + extra + "}";
    };
    for (const auto& [name, f] : families_) {
        if (f.type.empty()) continue;
        if (!f.help.empty()) out += "# HELP " + name + " " + f.help + "\n";
        out += "# TYPE " + name + " " + f.type + "\n";
        for (const auto& [labels, v] : f.values) {
            out += name;
            if (!labels.empty()) out += "{" + labels + "}";
            out += " " + format_value(v->get()) + "\n";
        }
        for (const auto& [labels, h] : f.histograms) {
            auto cum = h->cumulative();
            for (size_t i = 0; i < cum.size(); ++i) {
                std::string le = "+Inf";
                if (i < h->bounds().size()) {
                    char b[32];
                    std::snprintf(b, sizeof b, "%g",
                                  h->bounds()[i]);  // 0.0005, not 0.00050000000000000001
                    le = b;
                }
                out += name + "_bucket" + with(labels, "le=\"" + le + "\"") + " " +
                       std::to_string(cum[i]) + "\n";
            }
            std::string l = labels.empty() ? "" : "{" + labels + "}";
            out += name + "_sum" + l + " " + format_value(h->sum()) + "\n";
            out += name + "_count" + l + " " + std::to_string(h->count()) + "\n";
        }
    }
    return out;
}

}  // namespace clayhook
