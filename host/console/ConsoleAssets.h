#pragma once

// The console's files (host/console/assets/), compiled into the binary by
// cmake/EmbedAssets.cmake: the console needs nothing on disk at run time.

#include <string_view>
#include <vector>

namespace clayhook {

struct ConsoleAsset {
    std::string_view name;  // the file name, e.g. "console.js"
    std::string_view data;
};

// Every asset, by name order.
const std::vector<ConsoleAsset>& console_assets();

// The asset called `name`, or nullptr.
const ConsoleAsset* find_console_asset(std::string_view name);

// The Content-Type for a file name by its extension (text types in UTF-8);
// application/octet-stream when unknown.
std::string_view console_content_type(std::string_view name);

}  // namespace clayhook
