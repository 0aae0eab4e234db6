// MmioTransport snapshot: Save() copies the registers out; ValidateState()
// checks a saved state field by field (it came from a file) before
// Restore() applies it.
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>

#include <bit>

#include "vmm-glue/virtio/mmio_transport.h"

namespace kf::virtio {

namespace pb = katafactory::snapshot::v1;

pb::VirtioMmioState MmioTransport::Save() const {
  pb::VirtioMmioState s;
  s.set_status(status_);
  s.set_device_features_sel(device_features_sel_);
  s.set_driver_features_sel(driver_features_sel_);
  s.set_driver_features(driver_features_);
  s.set_queue_sel(queue_sel_);
  s.set_interrupt_status(interrupt_status_);
  s.set_config_generation(config_generation_);
  for (const Virtqueue& q : queues_) {
    pb::VirtqueueState* qs = s.add_queues();
    qs->set_size(q.config().size);
    qs->set_ready(q.config().ready);
    qs->set_desc_gpa(q.config().desc_gpa);
    qs->set_avail_gpa(q.config().avail_gpa);
    qs->set_used_gpa(q.config().used_gpa);
    qs->set_last_avail_idx(q.last_avail_idx());
    qs->set_next_used_idx(q.next_used_idx());
  }
  return s;
}

Status MmioTransport::ValidateState(const pb::VirtioMmioState& s) const {
  const uint32_t status = s.status();
  if (status & ~uint32_t{VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                         VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FEATURES_OK |
                         VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED}) {
    return Error("virtio-mmio state: status " + std::to_string(status) + " has unknown bits");
  }
  auto has = [&](uint32_t bit) { return (status & bit) != 0; };
  if ((has(VIRTIO_CONFIG_S_DRIVER) && !has(VIRTIO_CONFIG_S_ACKNOWLEDGE)) ||
      (has(VIRTIO_CONFIG_S_FEATURES_OK) && !has(VIRTIO_CONFIG_S_DRIVER)) ||
      (has(VIRTIO_CONFIG_S_DRIVER_OK) && !has(VIRTIO_CONFIG_S_FEATURES_OK))) {
    return Error("virtio-mmio state: status " + std::to_string(status) +
                 " skips a step of ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK");
  }
  if (s.driver_features() & ~device_->device_features()) {
    return Error("virtio-mmio state: driver features " + std::to_string(s.driver_features()) +
                 " include some the device does not offer");
  }
  if (has(VIRTIO_CONFIG_S_FEATURES_OK) &&
      !(s.driver_features() & (uint64_t{1} << VIRTIO_F_VERSION_1))) {
    return Error("virtio-mmio state: FEATURES_OK without VIRTIO_F_VERSION_1");
  }
  if (s.interrupt_status() & ~uint32_t{VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG}) {
    return Error("virtio-mmio state: interrupt status " + std::to_string(s.interrupt_status()) +
                 " has unknown bits");
  }
  if (static_cast<size_t>(s.queues_size()) != queues_.size()) {
    return Error("virtio-mmio state: " + std::to_string(s.queues_size()) + " queues, the device has " +
                 std::to_string(queues_.size()));
  }
  const bool running = has(VIRTIO_CONFIG_S_DRIVER_OK) && !has(VIRTIO_CONFIG_S_NEEDS_RESET);
  for (size_t i = 0; i < queues_.size(); ++i) {
    const pb::VirtqueueState& q = s.queues(static_cast<int>(i));
    const std::string what = "virtio-mmio state: queue " + std::to_string(i);
    const uint16_t max = queues_[i].max_size();
    if (q.size() > max || !std::has_single_bit(q.size())) {
      return Error(what + ": size " + std::to_string(q.size()) +
                   " is not a power of two in [1, " + std::to_string(max) + "]");
    }
    if (q.last_avail_idx() > 0xffff || q.next_used_idx() > 0xffff) {
      return Error(what + ": ring index above 65535");
    }
    if (running && !q.ready()) return Error(what + ": not ready although the driver is OK");
    if (q.ready() || running) {
      QueueConfig c{static_cast<uint16_t>(q.size()), q.ready(), q.desc_gpa(), q.avail_gpa(),
                    q.used_gpa()};
      RETURN_IF_ERROR(Virtqueue::ValidateConfig(c, max, mem_, what));
    }
  }
  return Status::Ok();
}

void MmioTransport::Restore(const pb::VirtioMmioState& s) {
  ResetAll();
  status_ = s.status();
  device_features_sel_ = s.device_features_sel();
  driver_features_sel_ = s.driver_features_sel();
  driver_features_ = s.driver_features();
  queue_sel_ = s.queue_sel();
  interrupt_status_ = s.interrupt_status();
  config_generation_ = s.config_generation();
  for (size_t i = 0; i < queues_.size(); ++i) {
    const pb::VirtqueueState& q = s.queues(static_cast<int>(i));
    QueueConfig& c = queues_[i].config();
    c = QueueConfig{static_cast<uint16_t>(q.size()), q.ready(), q.desc_gpa(), q.avail_gpa(),
                    q.used_gpa()};
    queues_[i].set_indices(static_cast<uint16_t>(q.last_avail_idx()),
                           static_cast<uint16_t>(q.next_used_idx()));
  }
  if (active()) device_->Activate(this);
}

}  // namespace kf::virtio
