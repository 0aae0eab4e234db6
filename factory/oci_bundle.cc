#include "factory/oci_bundle.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace kf {

namespace {

namespace gpb = google::protobuf;

// Mounts the agent makes in every container itself.
bool AgentProvides(const std::string& destination) {
  for (const char* d : {"/proc", "/dev", "/dev/pts", "/dev/shm", "/sys"})
    if (destination == d) return true;
  return false;
}

const gpb::Value* Field(const gpb::Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() || it->second.has_null_value() ? nullptr : &it->second;
}

Result<std::string> String(const gpb::Value& v, const std::string& where) {
  if (!v.has_string_value()) return Error(where + " must be a string");
  return v.string_value();
}

Result<uint32_t> Uint32(const gpb::Value& v, const std::string& where) {
  if (!v.has_number_value()) return Error(where + " must be a number");
  const double d = v.number_value();
  if (d < 0 || d > 4294967295.0 || std::floor(d) != d)
    return Error(where + " must be an integer 0..4294967295");
  return static_cast<uint32_t>(d);
}

Result<const gpb::Struct*> Object(const gpb::Value& v, const std::string& where) {
  if (!v.has_struct_value()) return Error(where + " must be an object");
  return &v.struct_value();
}

Result<const gpb::ListValue*> List(const gpb::Value& v, const std::string& where) {
  if (!v.has_list_value()) return Error(where + " must be an array");
  return &v.list_value();
}

template <typename Add>
Status Strings(const gpb::Value& v, const std::string& where, Add add) {
  ASSIGN_OR_RETURN(const gpb::ListValue* l, List(v, where));
  for (int i = 0; i < l->values_size(); ++i) {
    ASSIGN_OR_RETURN(std::string s, String(l->values(i), where + "[" + std::to_string(i) + "]"));
    add(s);
  }
  return Status::Ok();
}

// Is `path` (absolute) the bundle directory or below it?
bool InsideBundle(const std::string& path, const std::string& bundle_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path b = fs::weakly_canonical(fs::absolute(bundle_dir, ec), ec);
  const fs::path p = fs::weakly_canonical(path, ec);
  auto bi = b.begin(), pi = p.begin();
  for (; bi != b.end() && !bi->empty(); ++bi, ++pi)
    if (pi == p.end() || *pi != *bi) return false;
  return true;
}

Status ParseProcess(const gpb::Struct& p, agentpb::Process* out) {
  if (auto* v = Field(p, "args"))
    RETURN_IF_ERROR(Strings(*v, "process.args", [&](const std::string& s) { out->add_args(s); }));
  if (auto* v = Field(p, "env"))
    RETURN_IF_ERROR(Strings(*v, "process.env", [&](const std::string& s) { out->add_env(s); }));
  if (auto* v = Field(p, "cwd")) {
    ASSIGN_OR_RETURN(std::string cwd, String(*v, "process.cwd"));
    out->set_cwd(cwd);
  }
  if (auto* v = Field(p, "terminal")) {
    if (!v->has_bool_value()) return Error("process.terminal must be true or false");
    out->set_terminal(v->bool_value());
  }
  if (auto* v = Field(p, "user")) {
    ASSIGN_OR_RETURN(const gpb::Struct* u, Object(*v, "process.user"));
    if (auto* x = Field(*u, "uid")) {
      ASSIGN_OR_RETURN(uint32_t uid, Uint32(*x, "process.user.uid"));
      out->set_uid(uid);
    }
    if (auto* x = Field(*u, "gid")) {
      ASSIGN_OR_RETURN(uint32_t gid, Uint32(*x, "process.user.gid"));
      out->set_gid(gid);
    }
  }
  return Status::Ok();
}

Status ParseMount(const gpb::Struct& m, const std::string& where, agentpb::Mount* out) {
  for (const char* key : {"destination", "type", "source"}) {
    if (auto* v = Field(m, key)) {
      ASSIGN_OR_RETURN(std::string s, String(*v, where + "." + key));
      if (std::string(key) == "destination") out->set_destination(s);
      else if (std::string(key) == "type") out->set_type(s);
      else out->set_source(s);
    }
  }
  if (out->destination().empty()) return Error(where + ".destination is required");
  if (auto* v = Field(m, "options"))
    RETURN_IF_ERROR(
        Strings(*v, where + ".options", [&](const std::string& s) { out->add_options(s); }));
  // Bind mounts: OCI's "type" may be absent with "bind" among the options.
  if (out->type().empty())
    for (const auto& opt : out->options())
      if (opt == "bind" || opt == "rbind") out->set_type("bind");
  return Status::Ok();
}

}  // namespace

Result<agentpb::CreateContainerRequest> ParseOciConfig(const std::string& json,
                                                       const std::string& bundle_dir) {
  gpb::Struct root;
  auto parsed = gpb::util::JsonStringToMessage(json, &root);
  if (!parsed.ok()) return Error("config.json is not a JSON object: " + parsed.ToString());
  agentpb::CreateContainerRequest req;

  if (auto* v = Field(root, "process")) {
    ASSIGN_OR_RETURN(const gpb::Struct* p, Object(*v, "process"));
    RETURN_IF_ERROR(ParseProcess(*p, req.mutable_process()));
  }
  if (auto* v = Field(root, "hostname")) {
    ASSIGN_OR_RETURN(std::string h, String(*v, "hostname"));
    req.set_hostname(h);
  }
  if (auto* v = Field(root, "root")) {
    ASSIGN_OR_RETURN(const gpb::Struct* r, Object(*v, "root"));
    if (auto* pv = Field(*r, "path")) {
      ASSIGN_OR_RETURN(std::string path, String(*pv, "root.path"));
      const std::string host =
          path.empty() || path[0] != '/' ? bundle_dir + "/" + path : path;
      if (path.empty() || path[0] != '/' || InsideBundle(path, bundle_dir))
        return Error("root.path '" + path + "' is a host directory (" + host +
                     "): a host directory cannot be shared into the VM yet; set root.path to "
                     "an absolute directory inside the guest (e.g. /rootfs, the pmem image), "
                     "or leave \"root\" out for the default");
      req.set_rootfs(path);
    }
  }
  if (auto* v = Field(root, "mounts")) {
    ASSIGN_OR_RETURN(const gpb::ListValue* l, List(*v, "mounts"));
    for (int i = 0; i < l->values_size(); ++i) {
      const std::string where = "mounts[" + std::to_string(i) + "]";
      ASSIGN_OR_RETURN(const gpb::Struct* m, Object(l->values(i), where));
      agentpb::Mount mount;
      RETURN_IF_ERROR(ParseMount(*m, where, &mount));
      if (AgentProvides(mount.destination()) || mount.type() == "cgroup" ||
          mount.type() == "cgroup2")
        continue;
      *req.add_mounts() = std::move(mount);
    }
  }
  if (auto* v = Field(root, "linux")) {
    ASSIGN_OR_RETURN(const gpb::Struct* lx, Object(*v, "linux"));
    if (auto* nv = Field(*lx, "namespaces")) {
      ASSIGN_OR_RETURN(const gpb::ListValue* l, List(*nv, "linux.namespaces"));
      for (int i = 0; i < l->values_size(); ++i) {
        const std::string where = "linux.namespaces[" + std::to_string(i) + "]";
        ASSIGN_OR_RETURN(const gpb::Struct* ns, Object(l->values(i), where));
        if (Field(*ns, "path") != nullptr)
          return Error(where + ": joining an existing namespace (path) is not supported");
        const gpb::Value* t = Field(*ns, "type");
        if (t == nullptr) return Error(where + ".type is required");
        ASSIGN_OR_RETURN(std::string type, String(*t, where + ".type"));
        req.add_namespaces(type);
      }
    }
  }
  return req;
}

Result<agentpb::CreateContainerRequest> LoadOciBundle(const std::string& bundle_dir) {
  const std::string path = bundle_dir + "/config.json";
  std::ifstream f(path);
  if (!f) return Error::Sys("open " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  auto req = ParseOciConfig(ss.str(), bundle_dir);
  if (!req.ok()) return req.error().Context(path);
  return req;
}

}  // namespace kf
