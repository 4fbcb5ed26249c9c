#include "routing/EventPattern.h"

#include <cctype>
#include <stdexcept>

namespace clayhook {

std::string EventPattern::why_invalid(std::string_view t) {
    if (t.empty()) return "an event pattern must not be empty";
    if (t == "*") return "";
    std::string_view body = t;
    if (t.size() >= 2 && t.substr(t.size() - 2) == ".*") body = t.substr(0, t.size() - 2);
    if (body.empty()) return "'" + std::string(t) + "' has nothing before '.*'";
    if (body.front() == '.' || body.back() == '.' || body.find("..") != std::string_view::npos)
        return "'" + std::string(t) + "' has an empty segment between dots";
    for (char c : body)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
            return "'" + std::string(t) +
                   "' is not a pattern: use an event type, a prefix ending in '.*', or '*'";
    return "";
}

EventPattern::EventPattern(std::string_view text) : text_(text) {
    if (auto why = why_invalid(text); !why.empty()) throw std::invalid_argument(why);
    if (text == "*")
        kind_ = Kind::all;
    else if (text.size() >= 2 && text.substr(text.size() - 2) == ".*") {
        kind_ = Kind::prefix;
        prefix_ = std::string(text.substr(0, text.size() - 1));  // keeps the dot
    }
}

bool EventPattern::matches(std::string_view type) const {
    switch (kind_) {
        case Kind::all:
            return true;
        case Kind::prefix:
            return type.size() > prefix_.size() && type.substr(0, prefix_.size()) == prefix_;
        case Kind::exact:
            return type == text_;
    }
    return false;
}

}  // namespace clayhook
