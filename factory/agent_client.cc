#include "factory/agent_client.h"

#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

#include "agent/proto/agent_frame.h"
#include "factory/clock.h"
#include "factory/sandbox_client.h"
#include "factory/zygote.h"

namespace kf {

namespace {

constexpr size_t kMaxLine = 64;

// How each Response kind is named in errors.
const char* KindName(agentpb::Request::BodyCase c) {
  switch (c) {
    case agentpb::Request::kPing: return "Ping";
    case agentpb::Request::kSetIdentity: return "SetIdentity";
    case agentpb::Request::kGetIdentity: return "GetIdentity";
    case agentpb::Request::kGetStats: return "GetStats";
    case agentpb::Request::kDirtyPages: return "DirtyPages";
    case agentpb::Request::kHashRange: return "HashRange";
    case agentpb::Request::kRandom: return "Random";
    case agentpb::Request::kReadFile: return "ReadFile";
    case agentpb::Request::kCreateContainer: return "CreateContainer";
    case agentpb::Request::kStartContainer: return "StartContainer";
    case agentpb::Request::kExecProcess: return "ExecProcess";
    case agentpb::Request::kWaitProcess: return "WaitProcess";
    case agentpb::Request::kSignalProcess: return "SignalProcess";
    case agentpb::Request::kReadStdout: return "ReadStdout";
    case agentpb::Request::kReadStderr: return "ReadStderr";
    case agentpb::Request::kWriteStdin: return "WriteStdin";
    case agentpb::Request::kCloseStdin: return "CloseStdin";
    case agentpb::Request::kRemoveContainer: return "RemoveContainer";
    default: return "empty request";
  }
}

}  // namespace

Result<Identity> FreshIdentity(const std::string& sandbox_id) {
  Identity id;
  id.sandbox_id = sandbox_id;
  id.hostname = sandbox_id;
  if (::getrandom(id.entropy.data(), id.entropy.size(), 0) !=
      static_cast<ssize_t>(id.entropy.size()))
    return Error::Sys("getrandom");
  id.wall_clock_ns = RealtimeNs();
  return id;
}

Result<AgentClient> AgentClient::Connect(const std::string& uds_path, uint32_t port,
                                         int timeout_ms) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (uds_path.empty() || uds_path.size() >= sizeof addr.sun_path)
    return Error("agent socket path '" + uds_path + "' is empty or longer than " +
                 std::to_string(sizeof addr.sun_path - 1) + " bytes");
  std::memcpy(addr.sun_path, uds_path.data(), uds_path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Error::Sys("socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
    return Error::Sys("connect to " + uds_path);
  auto c = Handshake(std::move(fd), port, timeout_ms);
  if (!c.ok()) return c.error().Context(uds_path);
  return c;
}

Result<AgentClient> AgentClient::Handshake(UniqueFd fd, uint32_t port, int timeout_ms) {
  AgentClient c(std::move(fd), timeout_ms);
  const std::string line = "CONNECT " + std::to_string(port) + "\n";
  RETURN_IF_ERROR(c.SendAll(line.data(), line.size()));
  ASSIGN_OR_RETURN(std::string ok, c.RecvLine());
  // "OK <host port>"
  if (ok.rfind("OK ", 0) != 0 || ok.size() < 4 || ok.size() > 13 ||
      ok.find_first_not_of("0123456789", 3) != std::string::npos)
    return Error("vsock handshake: expected 'OK <port>', got '" + ok + "'");
  c.host_port_ = static_cast<uint32_t>(std::stoull(ok.substr(3)));
  RETURN_IF_ERROR(c.RecvReady());
  return c;
}

Result<AgentClient> AgentClient::Attach(UniqueFd fd, int timeout_ms) {
  AgentClient c(std::move(fd), timeout_ms);
  RETURN_IF_ERROR(c.RecvReady());
  return c;
}

Status AgentClient::RecvReady() {
  uint32_t stream = 0;
  ASSIGN_OR_RETURN(std::string payload, RecvFrame(&stream));
  agentpb::Response r;
  if (stream != KF_AGENT_STREAM_AGENT || !r.ParseFromString(payload) || !r.has_ready())
    return Error("agent did not start with a Ready frame on stream 0");
  ready_ = r.ready();
  return Status::Ok();
}

Status AgentClient::SendAll(const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (len > 0) {
    ssize_t n = ::send(fd_.get(), p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::Sys("send to agent");
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status AgentClient::RecvAll(void* data, size_t len) {
  auto* p = static_cast<uint8_t*>(data);
  const uint64_t deadline = MonotonicNs() + uint64_t(timeout_ms_) * 1000000;
  while (len > 0) {
    const uint64_t now = MonotonicNs();
    if (now >= deadline)
      return Error("agent did not answer in " + std::to_string(timeout_ms_) + " ms");
    pollfd pfd{fd_.get(), POLLIN, 0};
    int r = ::poll(&pfd, 1, static_cast<int>((deadline - now) / 1000000) + 1);
    if (r < 0 && errno != EINTR) return Error::Sys("poll agent socket");
    if (r <= 0) continue;
    ssize_t n = ::recv(fd_.get(), p, len, 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Error::Sys("recv from agent");
    }
    if (n == 0) return Error("agent connection closed");
    p += n;
    len -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

// Byte by byte: the bytes after the line are the stream and must stay in the
// socket for the frame reader.
Result<std::string> AgentClient::RecvLine() {
  std::string line;
  for (;;) {
    char ch;
    RETURN_IF_ERROR(RecvAll(&ch, 1));
    if (ch == '\n') return line;
    line += ch;
    if (line.size() > kMaxLine) return Error("vsock handshake: reply line too long");
  }
}

Result<std::string> AgentClient::RecvFrame(uint32_t* stream_id) {
  uint8_t raw[KF_AGENT_FRAME_HEADER_SIZE];
  RETURN_IF_ERROR(RecvAll(raw, sizeof raw));
  kf_agent_frame_header h{};
  int rc = kf_agent_frame_header_decode(raw, &h);
  if (rc != KF_PB_OK) return Error(std::string("bad frame header from agent: ") + kf_pb_strerror(rc));
  if (h.type != KF_AGENT_FRAME_RESPONSE) return Error("agent sent a request frame");
  std::string payload(h.length, '\0');
  RETURN_IF_ERROR(RecvAll(payload.data(), payload.size()));
  *stream_id = h.stream_id;
  return payload;
}

Result<agentpb::Response> AgentClient::Call(const agentpb::Request& request) {
  last_error_code_ = agentpb::ERROR_CODE_UNSPECIFIED;
  const std::string payload = request.SerializeAsString();
  kf_agent_frame_header h{static_cast<uint32_t>(payload.size()), next_stream_++,
                          KF_AGENT_FRAME_REQUEST, 0};
  uint8_t raw[KF_AGENT_FRAME_HEADER_SIZE];
  if (kf_agent_frame_header_encode(&h, raw) != KF_PB_OK)
    return Error("request of " + std::to_string(payload.size()) + " bytes is too large");
  std::string frame(reinterpret_cast<char*>(raw), sizeof raw);
  frame += payload;
  RETURN_IF_ERROR(SendAll(frame.data(), frame.size()));
  uint32_t stream = 0;
  ASSIGN_OR_RETURN(std::string reply_bytes, RecvFrame(&stream));
  const char* what = KindName(request.body_case());
  if (stream != h.stream_id)
    return Error(std::string(what) + ": reply on stream " + std::to_string(stream) +
                 ", expected " + std::to_string(h.stream_id));
  agentpb::Response reply;
  if (!reply.ParseFromString(reply_bytes)) return Error(std::string(what) + ": reply does not parse");
  if (reply.has_error()) {
    last_error_code_ = reply.error().code();
    return Error(std::string(what) + ": agent error " +
                 agentpb::ErrorCode_Name(reply.error().code()) + ": " + reply.error().message());
  }
  // Oneof numbers are shared: a reply's kind is its request's kind.
  if (static_cast<int>(reply.body_case()) != static_cast<int>(request.body_case()))
    return Error(std::string(what) + ": reply of another kind (" +
                 std::to_string(reply.body_case()) + ")");
  return reply;
}

Result<uint64_t> AgentClient::Ping(uint64_t echo) {
  agentpb::Request req;
  req.mutable_ping()->set_echo(echo);
  ASSIGN_OR_RETURN(agentpb::Response r, Call(req));
  if (r.ping().echo() != echo) return Error("Ping: echo mismatch");
  return r.ping().pings_served();
}

Result<uint64_t> AgentClient::SetIdentity(const Identity& id) {
  if (id.sandbox_id.size() >= 64 || id.hostname.size() >= 64)
    return Error("sandbox id and hostname must be shorter than 64 bytes");
  agentpb::Request req;
  auto* s = req.mutable_set_identity();
  s->set_sandbox_id(id.sandbox_id);
  s->set_hostname(id.hostname);
  s->set_entropy(std::string(reinterpret_cast<const char*>(id.entropy.data()), id.entropy.size()));
  s->set_wall_clock_unix_ns(id.wall_clock_ns);
  ASSIGN_OR_RETURN(agentpb::Response r, Call(req));
  return r.set_identity().identity_sets();
}

Result<Identity> AgentClient::GetIdentity() {
  agentpb::Request req;
  req.mutable_get_identity();
  ASSIGN_OR_RETURN(agentpb::Response r, Call(req));
  Identity id;
  id.sandbox_id = r.get_identity().sandbox_id();
  id.hostname = r.get_identity().hostname();
  id.wall_clock_ns = r.get_identity().wall_clock_unix_ns();
  id.identity_sets = r.get_identity().identity_sets();
  return id;
}

Result<agentpb::GetStatsReply> AgentClient::GetStats() {
  agentpb::Request req;
  req.mutable_get_stats();
  ASSIGN_OR_RETURN(agentpb::Response r, Call(req));
  return r.get_stats();
}

Result<uint64_t> AgentClient::DirtyPages(uint64_t gpa, uint64_t pages, uint64_t value) {
  agentpb::Request req;
  req.mutable_dirty_pages()->set_gpa(gpa);
  req.mutable_dirty_pages()->set_pages(pages);
  req.mutable_dirty_pages()->set_value(value);
  ASSIGN_OR_RETURN(agentpb::Response r, Call(req));
  return r.dirty_pages().pages();
}

Result<uint64_t> AgentClient::HashRange(uint64_t gpa, uint64_t bytes) {
  agentpb::Request req;
  req.mutable_hash_range()->set_gpa(gpa);
  req.mutable_hash_range()->set_bytes(bytes);
  ASSIGN_OR_RETURN(agentpb::Response r, Call(req));
  return r.hash_range().hash();
}

Result<std::string> AgentClient::Random(uint32_t bytes) {
  agentpb::Request req;
  req.mutable_random()->set_bytes(bytes);
  ASSIGN_OR_RETURN(agentpb::Response r, Call(req));
  if (r.random().data().size() != bytes) return Error("Random: wrong length");
  return r.random().data();
}

Result<agentpb::ReadFileReply> AgentClient::ReadFile(const std::string& path,
                                                      uint32_t max_bytes) {
  agentpb::Request req;
  req.mutable_read_file()->set_path(path);
  req.mutable_read_file()->set_max_bytes(max_bytes);
  ASSIGN_OR_RETURN(agentpb::Response r, Call(req));
  return r.read_file();
}

agentpb::Process MakeProcess(const std::vector<std::string>& args,
                             const std::vector<std::string>& env, const std::string& cwd) {
  agentpb::Process p;
  for (const auto& a : args) p.add_args(a);
  for (const auto& e : env) p.add_env(e);
  p.set_cwd(cwd);
  return p;
}

Result<uint32_t> AgentClient::CreateContainer(const agentpb::CreateContainerRequest& request) {
  agentpb::Request req;
  *req.mutable_create_container() = request;
  ASSIGN_OR_RETURN(agentpb::Response r, Call(req));
  return r.create_container().pid();
}

Result<uint32_t> AgentClient::StartContainer(const std::string& container_id) {
  agentpb::Request req;
  req.mutable_start_container()->set_container_id(container_id);
  ASSIGN_OR_RETURN(agentpb::Response r, Call(req));
  return r.start_container().pid();
}

Result<uint32_t> AgentClient::ExecProcess(const std::string& container_id,
                                          const std::string& exec_id,
                                          const agentpb::Process& process) {
  agentpb::Request req;
  auto* e = req.mutable_exec_process();
  e->set_container_id(container_id);
  e->set_exec_id(exec_id);
  *e->mutable_process() = process;
  ASSIGN_OR_RETURN(agentpb::Response r, Call(req));
  return r.exec_process().pid();
}

Result<agentpb::WaitProcessReply> AgentClient::WaitProcess(const std::string& container_id,
                                                           const std::string& exec_id,
                                                           uint32_t timeout_ms) {
  agentpb::Request req;
  auto* w = req.mutable_wait_process();
  w->set_container_id(container_id);
  w->set_exec_id(exec_id);
  w->set_timeout_ms(timeout_ms);
  ASSIGN_OR_RETURN(agentpb::Response r, Call(req));
  return r.wait_process();
}

Status AgentClient::SignalProcess(const std::string& container_id, const std::string& exec_id,
                                  int signal) {
  agentpb::Request req;
  auto* s = req.mutable_signal_process();
  s->set_container_id(container_id);
  s->set_exec_id(exec_id);
  s->set_signal(static_cast<uint32_t>(signal));
  ASSIGN_OR_RETURN(agentpb::Response r, Call(req));
  (void)r;
  return Status::Ok();
}

namespace {

agentpb::ReadStreamRequest ReadStream(const std::string& container_id, const std::string& exec_id,
                                      uint32_t wait_ms, uint32_t max_bytes) {
  agentpb::ReadStreamRequest s;
  s.set_container_id(container_id);
  s.set_exec_id(exec_id);
  s.set_wait_ms(wait_ms);
  s.set_max_bytes(max_bytes);
  return s;
}

}  // namespace

Result<agentpb::ReadStreamReply> AgentClient::ReadStdout(const std::string& container_id,
                                                         const std::string& exec_id,
                                                         uint32_t wait_ms, uint32_t max_bytes) {
  agentpb::Request req;
  *req.mutable_read_stdout() = ReadStream(container_id, exec_id, wait_ms, max_bytes);
  ASSIGN_OR_RETURN(agentpb::Response r, Call(req));
  return r.read_stdout();
}

Result<agentpb::ReadStreamReply> AgentClient::ReadStderr(const std::string& container_id,
                                                         const std::string& exec_id,
                                                         uint32_t wait_ms, uint32_t max_bytes) {
  agentpb::Request req;
  *req.mutable_read_stderr() = ReadStream(container_id, exec_id, wait_ms, max_bytes);
  ASSIGN_OR_RETURN(agentpb::Response r, Call(req));
  return r.read_stderr();
}

Result<uint32_t> AgentClient::WriteStdin(const std::string& container_id,
                                         const std::string& exec_id, std::string_view data) {
  agentpb::Request req;
  auto* w = req.mutable_write_stdin();
  w->set_container_id(container_id);
  w->set_exec_id(exec_id);
  w->set_data(std::string(data));
  ASSIGN_OR_RETURN(agentpb::Response r, Call(req));
  return r.write_stdin().len();
}

Status AgentClient::CloseStdin(const std::string& container_id, const std::string& exec_id) {
  agentpb::Request req;
  req.mutable_close_stdin()->set_container_id(container_id);
  req.mutable_close_stdin()->set_exec_id(exec_id);
  ASSIGN_OR_RETURN(agentpb::Response r, Call(req));
  (void)r;
  return Status::Ok();
}

Status AgentClient::RemoveContainer(const std::string& container_id) {
  agentpb::Request req;
  req.mutable_remove_container()->set_container_id(container_id);
  ASSIGN_OR_RETURN(agentpb::Response r, Call(req));
  (void)r;
  return Status::Ok();
}

Result<AgentClient> ConnectAgent(const CloneHandle& clone, int timeout_ms,
                                 SandboxTimings* timings) {
  SandboxClient control(clone.control.get(), timeout_ms);
  ASSIGN_OR_RETURN(SandboxTimings t, control.WaitListening());
  if (timings != nullptr) *timings = t;
  return AgentClient::Connect(clone.agent_sock, kAgentPort, timeout_ms);
}

}  // namespace kf
