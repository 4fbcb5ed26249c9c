// The one list of Clay's event types (host/routing/EventCatalogue), which
// check, send --sample and the fake Clay API all read.
#include "routing/EventCatalogue.h"

#include <catch2/catch.hpp>

using clayhook::clay_event_catalogue;
using clayhook::is_clay_event_type;

TEST_CASE("the catalogue is Clay's six event types, in the contract's order", "[routing]") {
    CHECK(clay_event_catalogue() == std::vector<std::string>{
                                        "enrichment.completed",
                                        "enrichment.failed",
                                        "table.row.created",
                                        "table.row.updated",
                                        "table.export.completed",
                                        "workflow.completed",
                                    });
}

TEST_CASE("a type is in the catalogue only as spelt there", "[routing]") {
    for (const auto& t : clay_event_catalogue())
        CHECK(is_clay_event_type(t));
    for (const char* other : {"", "enrichment", "enrichment.*", "*", "Enrichment.Completed",
                              "enrichment.completed ", "row.exploded"})
        CHECK_FALSE(is_clay_event_type(other));
}
