#include "log/Logger.h"

#include <chrono>
#include <ctime>
#include <stdexcept>

namespace clayhook {

Level parse_level(std::string_view name) {
    if (name == "debug") return Level::debug;
    if (name == "info") return Level::info;
    if (name == "warn") return Level::warn;
    if (name == "error") return Level::error;
    throw std::invalid_argument("unknown log level '" + std::string(name) +
                                "' (debug, info, warn, error)");
}

std::string_view level_name(Level level) {
    switch (level) {
        case Level::debug:
            return "debug";
        case Level::info:
            return "info";
        case Level::warn:
            return "warn";
        case Level::error:
            return "error";
    }
    return "info";
}

Logger::Logger(std::ostream& out, Level min_level) : out_(out), level_(min_level) {}

void Logger::set_level(Level level) {
    std::lock_guard lock(mu_);
    level_ = level;
}

Level Logger::level() const {
    std::lock_guard lock(mu_);
    return level_;
}

bool Logger::enabled(Level level) const {
    return level >= this->level();
}

void Logger::add_secret(std::string_view value) {
    if (value.size() < 4) return;
    std::lock_guard lock(mu_);
    for (const auto& s : secrets_)
        if (s == value) return;
    secrets_.emplace_back(value);
}

std::string logfmt_value(std::string_view v) {
    bool bare = !v.empty();
    for (char c : v)
        if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20)
            bare = false;
    if (bare) return std::string(v);
    std::string out = "\"";
    for (char c : v) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (static_cast<unsigned char>(c) < 0x20)
                    out += '?';
                else
                    out += c;
        }
    }
    out += '"';
    return out;
}

std::string Logger::redact(std::string line) const {
    static constexpr std::string_view mark = "[redacted]";
    for (const auto& s : secrets_) {
        for (size_t pos = line.find(s); pos != std::string::npos;
             pos = line.find(s, pos + mark.size()))
            line.replace(pos, s.size(), mark);
    }
    return line;
}

void Logger::log(Level level, std::string_view component, std::string_view message,
                 const Fields& fields) {
    if (!enabled(level)) return;
    auto now = std::chrono::system_clock::now();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char ts[80];
    std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(ms % 1000));
    std::string line = "ts=";
    line += ts;
    line += " level=";
    line += level_name(level);
    line += " component=";
    line += logfmt_value(component);
    std::lock_guard lock(mu_);
    // Redact before escaping, so a secret holding a quote is still found.
    line += " msg=";
    line += logfmt_value(redact(std::string(message)));
    for (const auto& [k, v] : fields) {
        line += ' ';
        line += k;
        line += '=';
        line += logfmt_value(redact(v));
    }
    line += '\n';
    out_ << line << std::flush;
}

}  // namespace clayhook
