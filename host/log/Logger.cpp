#include "log/Logger.h"

#include "text/Text.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
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

int syslog_priority(Level level) {
    switch (level) {
        case Level::debug:
            return 7;  // SD_DEBUG
        case Level::info:
            return 6;  // SD_INFO
        case Level::warn:
            return 4;  // SD_WARNING
        case Level::error:
            return 3;  // SD_ERR
    }
    return 6;
}

LogFormat parse_log_format(std::string_view name) {
    if (name == "logfmt") return LogFormat::logfmt;
    if (name == "json") return LogFormat::json;
    throw std::invalid_argument("unknown log format '" + std::string(name) + "' (logfmt, json)");
}

std::string_view log_format_name(LogFormat format) {
    return format == LogFormat::json ? "json" : "logfmt";
}

Logger::Logger(std::ostream& out, Level min_level, LogOptions options)
    : out_(out),
      level_(min_level),
      format_(options.format),
      journal_priority_(options.journal_priority) {}

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

void Logger::set_format(LogFormat format) {
    std::lock_guard lock(mu_);
    format_ = format;
}

LogFormat Logger::format() const {
    std::lock_guard lock(mu_);
    return format_;
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

std::string json_string(std::string_view text) {
    // Invalid UTF-8 becomes U+FFFD first (text/Text.h); then only the ASCII
    // that JSON requires is escaped, controls other than \n \r \t as \u00XX.
    static constexpr char hex[] = "0123456789abcdef";
    const std::string v = to_valid_utf8(text);
    std::string out = "\"";
    out.reserve(v.size() + 2);
    for (char ch : v) {
        const auto c = static_cast<unsigned char>(ch);
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
                if (c < 0x20) {
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 0xF];
                } else {
                    out += ch;
                }
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

std::string Logger::logfmt_line(std::string_view ts, Level level, std::string_view component,
                                std::string_view message, const Fields& fields) const {
    std::string line = "ts=";
    line += ts;
    line += " level=";
    line += level_name(level);
    line += " component=";
    line += logfmt_value(component);
    // Redact before escaping, so a secret holding a quote is still found.
    line += " msg=";
    line += logfmt_value(redact(std::string(message)));
    for (const auto& [k, v] : fields) {
        line += ' ';
        line += k;
        line += '=';
        line += logfmt_value(redact(v));
    }
    return line;
}

std::string Logger::json_line(std::string_view ts, Level level, std::string_view component,
                              std::string_view message, const Fields& fields) const {
    std::string line = "{\"ts\":";
    line += json_string(ts);
    line += ",\"level\":";
    line += json_string(level_name(level));
    line += ",\"component\":";
    line += json_string(component);
    // Redact before escaping, so a secret holding a quote is still found.
    line += ",\"msg\":";
    line += json_string(redact(std::string(message)));
    // A field must not repeat a key: one named like a key already written
    // (a fixed one, or an earlier field) is prefixed with "field." until it
    // is new.
    std::vector<std::string> keys = {"ts", "level", "component", "msg"};
    for (const auto& [k, v] : fields) {
        std::string key(k);
        while (std::find(keys.begin(), keys.end(), key) != keys.end())
            key.insert(0, "field.");
        line += ',';
        line += json_string(key);
        line += ':';
        line += json_string(redact(v));
        keys.push_back(std::move(key));
    }
    line += '}';
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
    std::lock_guard lock(mu_);
    std::string line;
    if (journal_priority_) {
        line += '<';
        line += std::to_string(syslog_priority(level));
        line += '>';
    }
    line += format_ == LogFormat::json ? json_line(ts, level, component, message, fields)
                                       : logfmt_line(ts, level, component, message, fields);
    line += '\n';
    out_ << line << std::flush;
}

}  // namespace clayhook
