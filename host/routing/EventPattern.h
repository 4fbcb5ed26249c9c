#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace clayhook {

// An event-type pattern: "enrichment.completed" (exact), "enrichment.*" (all
// types under a dotted prefix), or "*" (everything).
class EventPattern {
  public:
    // Throws std::invalid_argument with the reason when malformed.
    explicit EventPattern(std::string_view text);

    static std::string why_invalid(std::string_view text);  // "" when valid

    bool matches(std::string_view type) const;
    const std::string& text() const { return text_; }

  private:
    enum class Kind { exact, prefix, all };
    std::string text_;
    std::string prefix_;  // "enrichment." for "enrichment.*"
    Kind kind_ = Kind::exact;
};

}  // namespace clayhook
