#include "store/Store.h"

#include <algorithm>

namespace clayhook {

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
