#include "routing/EventPattern.h"

#include <catch2/catch.hpp>

using clayhook::EventPattern;

TEST_CASE("exact, prefix and catch-all patterns match as documented", "[routing]") {
    EventPattern exact("enrichment.completed"), prefix("enrichment.*"), all("*"),
        nested("table.row.*");
    CHECK(exact.matches("enrichment.completed"));
    CHECK_FALSE(exact.matches("enrichment.failed"));
    CHECK(prefix.matches("enrichment.completed"));
    CHECK(prefix.matches("enrichment.failed"));
    CHECK_FALSE(prefix.matches("enrichment"));
    CHECK_FALSE(prefix.matches("enrichment."));
    CHECK_FALSE(prefix.matches("enrichments.completed"));
    CHECK(nested.matches("table.row.created"));
    CHECK_FALSE(nested.matches("table.export.completed"));
    CHECK(all.matches("anything.at.all"));
}

TEST_CASE("malformed patterns are refused with a reason", "[routing]") {
    for (const char* bad :
         {"", ".*", "enrichment.*.done", "a..b", ".a", "a.", "enrich ment", "*.completed"}) {
        INFO("pattern '" << bad << "'");
        CHECK_FALSE(EventPattern::why_invalid(bad).empty());
        CHECK_THROWS_AS(EventPattern(bad), std::invalid_argument);
    }
}
