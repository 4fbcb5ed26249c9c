// open_store: the one place that knows every engine.
#include "store/PgStore.h"
#include "store/SqliteStore.h"

#include <stdexcept>

namespace clayhook {

std::unique_ptr<Store> open_store(const StoreConfig& config, size_t max_queue) {
    if (config.engine == "sqlite") return std::make_unique<SqliteStore>(config, max_queue);
    if (config.engine == "postgres") return std::make_unique<PgStore>(config, max_queue);
    throw std::runtime_error("cannot open store: unknown engine \"" + config.engine +
                             "\" (expected sqlite or postgres)");
}

}  // namespace clayhook
