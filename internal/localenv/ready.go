package localenv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// readyTimeout bounds waiting for a service when the caller set no deadline.
// Services here are ready in tens of milliseconds; this only turns a hang
// into an error that shows the service's output.
const readyTimeout = 30 * time.Second

// waitReady polls check until it succeeds, the pod's process exits (reported
// at once, with its last output) or ctx ends. Polling starts at 2 ms and backs
// off to 50 ms: services here come up in milliseconds, and a fixed sleep
// would either waste time or flake.
func (e *Env) waitReady(ctx context.Context, p *Pod, what string, check func(context.Context) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, readyTimeout)
		defer cancel()
	}
	delay := 2 * time.Millisecond
	var err error
	for attempt := 1; ; attempt++ {
		select {
		case <-p.Exited():
			return fmt.Errorf("localenv: %s in pod %s exited before it was ready (%v)%s", what, p.Name, p.exitErr(), p.tailText())
		default:
		}
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = check(actx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("localenv: %s in pod %s not ready after %d attempts (%v); last error: %v%s", what, p.Name, attempt, ctx.Err(), err, p.tailText())
		case <-p.Exited():
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// pingRedis speaks just enough RESP to check Redis answers from inside from.
func (e *Env) pingRedis(ctx context.Context, from *Pod) error {
	c, err := e.Dial(ctx, from, "tcp", netip.AddrPortFrom(RedisIP, RedisPort).String())
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, "*1\r\n$4\r\nPING\r\n"); err != nil {
		return fmt.Errorf("send PING: %w", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read PING reply: %w", err)
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

func (e *Env) checkDNS(ctx context.Context, from *Pod) error {
	ips, err := e.Lookup(ctx, from, RedisDNSName)
	if err != nil {
		return err
	}
	if len(ips) != 1 || ips[0] != RedisIP {
		return fmt.Errorf("%s resolved to %v, want %s", RedisDNSName, ips, RedisIP)
	}
	return nil
}

func (e *Env) checkHealth(ctx context.Context, p *Pod) error {
	url := "http://" + netip.AddrPortFrom(p.IP, AppPort).String() + "/healthz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := e.HTTP(e.Peer).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		return fmt.Errorf("GET %s: %s %q", url, resp.Status, body)
	}
	return nil
}

// Lookup asks the cluster DNS server for name's A records over UDP from
// inside from, as that pod's resolver would for a fully qualified name. It
// neither applies a search list nor reads any /etc/hosts.
func (e *Env) Lookup(ctx context.Context, from *Pod, name string) ([]netip.Addr, error) {
	fqdn := name
	if !strings.HasSuffix(fqdn, ".") {
		fqdn += "."
	}
	qname, err := dnsmessage.NewName(fqdn)
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", name, err)
	}
	id := uint16(rand.Uint32())
	q := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: qname, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}},
	}
	packet, err := q.Pack()
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", name, err)
	}
	server := netip.AddrPortFrom(DNSIP, DNSPort).String()
	c, err := e.Dial(ctx, from, "udp", server)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(5 * time.Second)
	}
	c.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.Write(packet); err != nil {
		return nil, fmt.Errorf("lookup %s: send to %s: %w", name, server, err)
	}
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, fmt.Errorf("lookup %s: no answer from %s: %w", name, server, err)
		}
		var m dnsmessage.Message
		if err := m.Unpack(buf[:n]); err != nil || m.ID != id || !m.Response {
			continue // not ours; keep waiting for the real answer
		}
		if m.RCode != dnsmessage.RCodeSuccess {
			return nil, fmt.Errorf("lookup %s: %s answered %v", name, server, m.RCode)
		}
		var ips []netip.Addr
		for _, a := range m.Answers {
			if r, ok := a.Body.(*dnsmessage.AResource); ok {
				ips = append(ips, netip.AddrFrom4(r.A))
			}
		}
		if len(ips) == 0 {
			return nil, fmt.Errorf("lookup %s: %s has no A record for it", name, server)
		}
		return ips, nil
	}
}
