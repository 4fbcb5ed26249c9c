#pragma once

// A config as JSON for people to read (the console's configuration page):
// every section that shapes the host's behaviour, secrets shown only as
// their references (${VAR}, file:PATH) and where they resolved from, never
// their values. A secret value that a plugin's config holds is replaced by
// "[redacted]".

#include "config/Config.h"

#include <clayhook/json.hpp>

namespace clayhook {

json::Value config_view(const Config& c);

}  // namespace clayhook
