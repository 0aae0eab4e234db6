/*
 * Where the vsock driver keeps its rings and buffers: fixed addresses in the
 * driver region [KF_BARE_DRIVER_GPA, KF_BARE_INIT_GPA) of bare_abi.h, so the
 * host can find them in a dump and no buffer lives on the small stack.
 *
 *   +0x000000  rx ring    (desc 0x000, avail 0x400, used 0x800), one page each
 *   +0x001000  tx ring
 *   +0x002000  event ring
 *   +0x003000  event buffers, 64 x 8 bytes
 *   +0x010000  rx packet buffers, 64 x 0x1040 (44-byte header + 4 KiB)
 *   +0x060000  tx packet buffers, 64 x 0x1040
 *   +0x0c0000  per-connection receive buffers, 16 x 32 KiB
 *   +0x140000  per-connection send buffers, 16 x 16 KiB
 *   +0x180000  free
 */
#ifndef KF_AGENT_BARE_LAYOUT_H_
#define KF_AGENT_BARE_LAYOUT_H_

#include "agent/bare/bare_abi.h"

#define KF_VQ_SIZE_MAX 64u /* entries per queue (power of 2), capped by QueueNumMax */
#define KF_VQ_RING_STRIDE 0x1000ull
#define KF_VQ_AVAIL_OFF 0x400ull /* after KF_VQ_SIZE_MAX 16-byte descriptors */
#define KF_VQ_USED_OFF 0x800ull
#define KF_RING_GPA(q) (KF_BARE_DRIVER_GPA + (uint64_t)(q)*KF_VQ_RING_STRIDE)

#define KF_EVENT_BUF_GPA (KF_BARE_DRIVER_GPA + 0x3000ull)
#define KF_EVENT_BUF_SIZE 8u

#define KF_PKT_HDR_SIZE 44u
#define KF_PKT_PAYLOAD_MAX 4096u
#define KF_PKT_BUF_SIZE (KF_PKT_HDR_SIZE + KF_PKT_PAYLOAD_MAX) /* one descriptor */
#define KF_PKT_BUF_STRIDE 0x1040ull
#define KF_RX_BUF_GPA (KF_BARE_DRIVER_GPA + 0x10000ull)
#define KF_TX_BUF_GPA (KF_BARE_DRIVER_GPA + 0x60000ull)

#define KF_CONN_MAX 16u
#define KF_CONN_IN_SIZE 0x8000u /* advertised as buf_alloc */
#define KF_CONN_OUT_SIZE 0x4000u
#define KF_CONN_IN_GPA (KF_BARE_DRIVER_GPA + 0xc0000ull)
#define KF_CONN_OUT_GPA (KF_BARE_DRIVER_GPA + 0x140000ull)
#define KF_DRIVER_END (KF_CONN_OUT_GPA + (uint64_t)KF_CONN_MAX * KF_CONN_OUT_SIZE)

_Static_assert(KF_VQ_AVAIL_OFF >= 16ull * KF_VQ_SIZE_MAX, "descriptors before avail");
_Static_assert(KF_VQ_USED_OFF >= KF_VQ_AVAIL_OFF + 6 + 2 * KF_VQ_SIZE_MAX, "avail before used");
_Static_assert(KF_VQ_USED_OFF + 6 + 8 * KF_VQ_SIZE_MAX <= KF_VQ_RING_STRIDE, "used fits");
_Static_assert(KF_RING_GPA(3) <= KF_EVENT_BUF_GPA, "rings before event buffers");
_Static_assert(KF_EVENT_BUF_GPA + KF_VQ_SIZE_MAX * KF_EVENT_BUF_SIZE <= KF_RX_BUF_GPA,
               "event buffers before rx buffers");
_Static_assert(KF_PKT_BUF_SIZE <= KF_PKT_BUF_STRIDE, "packet buffer fits its slot");
_Static_assert(KF_RX_BUF_GPA + KF_VQ_SIZE_MAX * KF_PKT_BUF_STRIDE <= KF_TX_BUF_GPA,
               "rx buffers before tx buffers");
_Static_assert(KF_TX_BUF_GPA + KF_VQ_SIZE_MAX * KF_PKT_BUF_STRIDE <= KF_CONN_IN_GPA,
               "tx buffers before connection buffers");
_Static_assert(KF_CONN_IN_GPA + (uint64_t)KF_CONN_MAX * KF_CONN_IN_SIZE <= KF_CONN_OUT_GPA,
               "receive before send buffers");
_Static_assert(KF_DRIVER_END <= KF_BARE_DRIVER_GPA + KF_BARE_DRIVER_SIZE, "driver region");

#endif /* KF_AGENT_BARE_LAYOUT_H_ */
