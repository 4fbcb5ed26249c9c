#include "store/Store.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <random>

namespace clayhook {

std::string default_store_owner() {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
        std::snprintf(host, sizeof host, "%s", "unknown-host");
    std::random_device rd;
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, "%08x", static_cast<unsigned>(rd()));
    return std::string(host) + ":" + std::to_string(::getpid()) + ":" + suffix;
}

void IntakeWriter::insert_async(const NewEvent& e, InsertDone done) noexcept {
    done(insert(e));  // blocking: see Store.h
}

void Store::subscribe(CommitListener* listener) {
    std::lock_guard lk(listeners_mu_);
    listeners_.push_back(listener);
}

void Store::unsubscribe(CommitListener* listener) {
    std::lock_guard lk(listeners_mu_);  // waits out a notification in progress
    listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), listener), listeners_.end());
}

void Store::notify_committed(size_t batch_size, std::vector<DeliveryRef>& deliveries) noexcept {
    std::lock_guard lk(listeners_mu_);
    for (CommitListener* l : listeners_)
        l->committed(batch_size, deliveries);
}

}  // namespace clayhook
