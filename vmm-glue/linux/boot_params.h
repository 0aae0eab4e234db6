// The x86 boot protocol's data structures, as far as the loader uses them:
// the setup header (Documentation/arch/x86/boot.rst, "The Real-Mode Kernel
// Header") and the offsets of the boot_params fields the loader writes
// (Documentation/arch/x86/zero-page.rst). Offsets are absolute within the
// zero page (and, for the setup header, within the bzImage file).
#pragma once

#include <cstddef>
#include <cstdint>

namespace kf::linux_boot {

inline constexpr uint64_t kSetupHeaderOffset = 0x1f1;

#pragma pack(push, 1)
struct SetupHeader {
  uint8_t setup_sects;            // 0x1f1
  uint16_t root_flags;            // 0x1f2
  uint32_t syssize;               // 0x1f4
  uint16_t ram_size;              // 0x1f8
  uint16_t vid_mode;              // 0x1fa
  uint16_t root_dev;              // 0x1fc
  uint16_t boot_flag;             // 0x1fe: 0xaa55
  uint16_t jump;                  // 0x200: jmp rel8; 0x202 + rel8 ends the header
  uint32_t header;                // 0x202: "HdrS"
  uint16_t version;               // 0x206
  uint32_t realmode_swtch;        // 0x208
  uint16_t start_sys_seg;         // 0x20c
  uint16_t kernel_version;        // 0x20e
  uint8_t type_of_loader;         // 0x210
  uint8_t loadflags;              // 0x211
  uint16_t setup_move_size;       // 0x212
  uint32_t code32_start;          // 0x214
  uint32_t ramdisk_image;         // 0x218
  uint32_t ramdisk_size;          // 0x21c
  uint32_t bootsect_kludge;       // 0x220
  uint16_t heap_end_ptr;          // 0x224
  uint8_t ext_loader_ver;         // 0x226
  uint8_t ext_loader_type;        // 0x227
  uint32_t cmd_line_ptr;          // 0x228
  uint32_t initrd_addr_max;       // 0x22c
  uint32_t kernel_alignment;      // 0x230
  uint8_t relocatable_kernel;     // 0x234
  uint8_t min_alignment;          // 0x235
  uint16_t xloadflags;            // 0x236
  uint32_t cmdline_size;          // 0x238
  uint32_t hardware_subarch;      // 0x23c
  uint64_t hardware_subarch_data; // 0x240
  uint32_t payload_offset;        // 0x248
  uint32_t payload_length;        // 0x24c
  uint64_t setup_data;            // 0x250
  uint64_t pref_address;          // 0x258
  uint32_t init_size;             // 0x260
  uint32_t handover_offset;       // 0x264
  uint32_t kernel_info_offset;    // 0x268 (protocol 2.15)
};
#pragma pack(pop)

#define KF_SETUP_AT(field, off) \
  static_assert(offsetof(SetupHeader, field) + kSetupHeaderOffset == (off), #field)
KF_SETUP_AT(boot_flag, 0x1fe);
KF_SETUP_AT(header, 0x202);
KF_SETUP_AT(version, 0x206);
KF_SETUP_AT(type_of_loader, 0x210);
KF_SETUP_AT(loadflags, 0x211);
KF_SETUP_AT(ramdisk_image, 0x218);
KF_SETUP_AT(heap_end_ptr, 0x224);
KF_SETUP_AT(cmd_line_ptr, 0x228);
KF_SETUP_AT(initrd_addr_max, 0x22c);
KF_SETUP_AT(kernel_alignment, 0x230);
KF_SETUP_AT(xloadflags, 0x236);
KF_SETUP_AT(cmdline_size, 0x238);
KF_SETUP_AT(setup_data, 0x250);
KF_SETUP_AT(pref_address, 0x258);
KF_SETUP_AT(init_size, 0x260);
KF_SETUP_AT(kernel_info_offset, 0x268);
#undef KF_SETUP_AT
static_assert(sizeof(SetupHeader) == 0x26c - kSetupHeaderOffset);

// The setup header's bytes through init_size/handover_offset: protocol 2.12.
inline constexpr uint64_t kSetupHeaderEnd212 = 0x268;
// boot_params reserves [0x1f1, 0x290) for the setup header.
inline constexpr uint64_t kSetupHeaderAreaEnd = 0x290;

inline constexpr uint32_t kHdrSMagic = 0x53726448;  // "HdrS"
inline constexpr uint16_t kBootFlag = 0xaa55;
inline constexpr uint16_t kMinProtocol = 0x020c;    // 2.12: XLF_KERNEL_64 exists
inline constexpr uint16_t kElfProtocol = 0x020f;    // what we claim for a vmlinux

// loadflags
inline constexpr uint8_t kLoadedHigh = 0x01;
inline constexpr uint8_t kCanUseHeap = 0x80;
// xloadflags
inline constexpr uint16_t kXlfKernel64 = 0x0001;

inline constexpr uint8_t kLoaderUndefined = 0xff;  // type_of_loader: "other"
// heap_end_ptr: the end of the setup heap, relative to the real-mode code
// (0xfe00 leaves 512 bytes of stack below 64 KiB); unused by the 64-bit
// entry but set as the boot protocol asks when CAN_USE_HEAP is set.
inline constexpr uint16_t kHeapEndPtr = 0xfe00;

// boot_params offsets (zero-page.rst).
inline constexpr uint64_t kBpAcpiRsdpAddr = 0x070;    // u64
inline constexpr uint64_t kBpExtRamdiskImage = 0x0c0;  // u32
inline constexpr uint64_t kBpExtRamdiskSize = 0x0c4;   // u32
inline constexpr uint64_t kBpExtCmdLinePtr = 0x0c8;    // u32
inline constexpr uint64_t kBpE820Entries = 0x1e8;     // u8
inline constexpr uint64_t kBpSentinel = 0x1ef;        // u8, must be 0
inline constexpr uint64_t kBpE820Table = 0x2d0;       // 128 x {u64 addr, u64 size, u32 type}
inline constexpr uint64_t kBpE820EntrySize = 20;
inline constexpr uint64_t kBpE820Max = 128;
static_assert(kBpE820Table + kBpE820Max * kBpE820EntrySize == 0xcd0);

}  // namespace kf::linux_boot
