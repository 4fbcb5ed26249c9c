#include "routing/EventCatalogue.h"

#include <algorithm>

namespace clayhook {

const std::vector<std::string>& clay_event_catalogue() {
    static const std::vector<std::string> types = {
        "enrichment.completed", "enrichment.failed",      "table.row.created",
        "table.row.updated",    "table.export.completed", "workflow.completed",
    };
    return types;
}

bool is_clay_event_type(std::string_view type) {
    const auto& all = clay_event_catalogue();
    return std::find(all.begin(), all.end(), type) != all.end();
}

}  // namespace clayhook
