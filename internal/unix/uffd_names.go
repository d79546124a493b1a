package unix

import "fmt"

var uffdFeatureNames = [...]string{
	"PAGEFAULT_FLAG_WP", "EVENT_FORK", "EVENT_REMAP", "EVENT_REMOVE",
	"MISSING_HUGETLBFS", "MISSING_SHMEM", "EVENT_UNMAP", "SIGBUS",
	"THREAD_ID", "MINOR_HUGETLBFS", "MINOR_SHMEM", "EXACT_ADDRESS",
	"WP_HUGETLBFS_SHMEM", "WP_UNPOPULATED", "POISON", "WP_ASYNC", "MOVE",
}

// UffdFeatureNames names the UFFD_FEATURE_* bits set in features, without
// the prefix; unknown bits are named by number ("bit17").
func UffdFeatureNames(features uint64) []string {
	var names []string
	for i := range 64 {
		if features&(1<<i) == 0 {
			continue
		}
		if i < len(uffdFeatureNames) {
			names = append(names, uffdFeatureNames[i])
		} else {
			names = append(names, fmt.Sprintf("bit%d", i))
		}
	}
	return names
}
