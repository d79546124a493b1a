package unix

// PMScanArg is struct pm_scan_arg of linux/fs.h: the argument of the
// PAGEMAP_SCAN ioctl on /proc/PID/pagemap (Linux 6.7).
type PMScanArg struct {
	Size              uint64 // size of this struct: PMScanArgSize
	Flags             uint64 // PM_SCAN_* flags
	Start             uint64 // first address of the range
	End               uint64 // end of the range (exclusive)
	WalkEnd           uint64 // written by the kernel: where the walk stopped
	Vec               uint64 // address of a []PageRegion for the result
	VecLen            uint64 // length of that slice
	MaxPages          uint64 // limit on pages reported, 0 for none
	CategoryInverted  uint64 // PAGE_IS_* categories that match when 0
	CategoryMask      uint64 // skip pages for which any of these does not match
	CategoryAnyofMask uint64 // skip pages for which none of these matches
	ReturnMask        uint64 // categories reported in PageRegion.Categories
}

// PageRegion is struct page_region: a run of pages with the same categories.
type PageRegion struct {
	Start      uint64
	End        uint64 // exclusive
	Categories uint64 // PAGE_IS_* bits, limited by PMScanArg.ReturnMask
}

// Sizes of the PAGEMAP_SCAN structs.
const (
	PMScanArgSize  = 96
	PageRegionSize = 24
)

// PAGEMAP_SCAN is the ioctl request: _IOWR('f', 16, struct pm_scan_arg).
const PAGEMAP_SCAN = iowr | PMScanArgSize<<iocSizeShift | 'f'<<iocTypeShift | 16

// PAGEMAP_SCAN flags.
const (
	PM_SCAN_WP_MATCHING   = 1 << 0 // write-protect the matched pages
	PM_SCAN_CHECK_WPASYNC = 1 << 1 // fail (EPERM) on a page without async WP
)

// Page categories, for the PMScanArg masks and PageRegion.Categories.
const (
	PAGE_IS_WPALLOWED  = 1 << 0 // registered for userfaultfd async write-protect
	PAGE_IS_WRITTEN    = 1 << 1 // written since it was last write-protected
	PAGE_IS_FILE       = 1 << 2
	PAGE_IS_PRESENT    = 1 << 3
	PAGE_IS_SWAPPED    = 1 << 4
	PAGE_IS_PFNZERO    = 1 << 5 // mapped to the zero page
	PAGE_IS_HUGE       = 1 << 6
	PAGE_IS_SOFT_DIRTY = 1 << 7 // only with CONFIG_MEM_SOFT_DIRTY
	PAGE_IS_GUARD      = 1 << 8 // MADV_GUARD_INSTALL guard page (6.15)
)
