#pragma once

// Clay's event catalogue: the six event types of this project's Clay contract
// (docs/contracts.md), in the contract's order. The one list: `check`
// warns about types no plugin handles and patterns matching none of them,
// `send --sample` signs one body per type, and the tests read it from here.
#include <string>
#include <string_view>
#include <vector>

namespace clayhook {

const std::vector<std::string>& clay_event_catalogue();

// Whether `type` is one of the catalogue's event types.
bool is_clay_event_type(std::string_view type);

}  // namespace clayhook
