package rules

import "strings"

// DNSNames decides which names are resolved where. At most one list is set:
// Remote resolves only matching names with the target's DNS; Local resolves
// matching names on this machine and the rest with the target's. Entries are
// names, or "*.suffix" for every name below suffix.
type DNSNames struct {
	list     []string
	isRemote bool
}

// NewDNSNames compiles a DNS filter; nil when there is none.
func NewDNSNames(remote, local []string) *DNSNames {
	switch {
	case len(remote) > 0:
		return &DNSNames{list: normalizeNames(remote), isRemote: true}
	case len(local) > 0:
		return &DNSNames{list: normalizeNames(local)}
	}
	return nil
}

func normalizeNames(in []string) []string {
	out := make([]string, len(in))
	for i, n := range in {
		out[i] = strings.ToLower(strings.TrimSuffix(n, "."))
	}
	return out
}

// Where decides for a queried name.
func (d *DNSNames) Where(name string) Where {
	if d == nil {
		return Remote
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	matched := false
	for _, p := range d.list {
		if suffix, ok := strings.CutPrefix(p, "*."); ok {
			if strings.HasSuffix(name, "."+suffix) {
				matched = true
				break
			}
		} else if name == p {
			matched = true
			break
		}
	}
	if matched == d.isRemote {
		return Remote
	}
	return Local
}
