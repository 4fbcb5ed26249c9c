#pragma once

// The store config of a PostgreSQL store on a test server's database, its
// URL given as an already resolved secret (as the config loader leaves it).
#include "config/Config.h"

#include <string>

namespace clayhook::test {

inline StoreConfig pg_config(const std::string& url, const std::string& host_id = "") {
    StoreConfig c;
    c.engine = "postgres";
    Secret s;
    s.ref = "test";
    s.resolved = true;
    s.value = url;
    c.postgres_url = s;
    c.host_id = host_id;
    return c;
}

}  // namespace clayhook::test
