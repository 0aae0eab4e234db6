// Text and JSON reports of a clone batch (used by `clone` and `demo`).
#pragma once

#include <string>

#include "factory/clone_batch.h"

namespace kf {

std::string CloneReportText(const std::string& template_dir, const CloneBatch& batch,
                            bool per_clone);
std::string CloneReportJson(const std::string& template_dir, const CloneBatch& batch);

}  // namespace kf
