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

void Metrics::counter_add(std::string_view name, std::string_view labels, double delta) {
    std::lock_guard lock(mu_);
    auto it = families_.find(name);
    if (it == families_.end())
        it = families_.emplace(std::string(name), Family{"counter", {}, {}}).first;
    it->second.series[std::string(labels)] += delta;
}

void Metrics::gauge_set(std::string_view name, std::string_view labels, double value) {
    std::lock_guard lock(mu_);
    auto it = families_.find(name);
    if (it == families_.end())
        it = families_.emplace(std::string(name), Family{"gauge", {}, {}}).first;
    it->second.series[std::string(labels)] = value;
}

void Metrics::set_help(std::string_view name, std::string_view type, std::string_view help) {
    std::lock_guard lock(mu_);
    auto& f = families_[std::string(name)];
    f.type = std::string(type);
    f.help = std::string(help);
}

double Metrics::value(std::string_view name, std::string_view labels) const {
    std::lock_guard lock(mu_);
    auto it = families_.find(name);
    if (it == families_.end()) return 0;
    auto s = it->second.series.find(std::string(labels));
    return s == it->second.series.end() ? 0 : s->second;
}

std::string Metrics::render() const {
    std::lock_guard lock(mu_);
    std::string out;
    for (const auto& [name, f] : families_) {
        if (!f.help.empty()) out += "# HELP " + name + " " + f.help + "\n";
        out += "# TYPE " + name + " " + f.type + "\n";
        for (const auto& [labels, v] : f.series) {
            out += name;
            if (!labels.empty()) out += "{" + labels + "}";
            out += " " + format_value(v) + "\n";
        }
    }
    return out;
}

}  // namespace clayhook
