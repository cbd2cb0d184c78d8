package dev.remocal.jetbrains.core.targets;

import dev.remocal.jetbrains.core.protocol.Protocol;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;

/**
 * The target chooser's rows, computed from the daemon's namespaces and targets: recent choices
 * first (marked gone when the target no longer exists), then a "targetless" row per Kubernetes
 * namespace (the cluster's network, DNS and files without a workload), then every target, filtered
 * by namespace, kinds and a search text. Not-ready targets stay listed, with why, since the
 * user may be waiting for them.
 */
public final class TargetModel {
    /** One row. */
    public record Row(TargetChoice choice, String kind, boolean ready, String status, List<String> containers,
                      String description, boolean recent, boolean gone) {
        /** The row's second column: readiness and what it runs. */
        public String detail() {
            StringBuilder sb = new StringBuilder();
            if (gone) {
                sb.append("no longer found");
            } else if (!ready) {
                sb.append("not ready").append(status == null || status.isEmpty() ? "" : ": " + status);
            } else if (status != null && !status.isEmpty()) {
                sb.append(status);
            }
            if (description != null && !description.isEmpty()) {
                sb.append(sb.length() == 0 ? "" : " · ").append(description);
            }
            return sb.toString();
        }
    }

    /** What the user narrowed the list to; nulls and empties mean everything. */
    public record Filter(String namespace, Set<String> kinds, String text) {
        public static final Filter ALL = new Filter(null, Set.of(), null);
    }

    private final List<Protocol.Namespace> namespaces;
    private final List<Protocol.Target> targets;

    public TargetModel(Protocol.NamespacesResult ns, Protocol.TargetsResult ts) {
        this.namespaces = List.copyOf(ns.namespaces);
        this.targets = List.copyOf(ts.targets);
    }

    public List<String> namespaces() {
        return namespaces.stream().map(n -> n.name).toList();
    }

    /** The kinds present, sorted, for the kind filter. */
    public List<String> kinds() {
        return List.copyOf(new TreeSet<>(targets.stream().map(t -> t.kind).toList()));
    }

    public List<Row> rows(Filter f, RecentTargets recent) {
        List<Row> all = new ArrayList<>();
        Set<TargetChoice> seen = new LinkedHashSet<>();
        for (TargetChoice c : recent.items()) {
            Row r = rowFor(c);
            if (matches(r, f)) {
                all.add(r);
                seen.add(c);
            }
        }
        for (Protocol.Namespace n : namespaces) {
            if ("kubernetes".equals(n.provider)) {
                TargetChoice c = new TargetChoice(TargetChoice.TARGETLESS, n.name, null, n.provider);
                Row r = new Row(c, TargetChoice.TARGETLESS, true, null, List.of(), "the namespace's network, DNS and files, no workload", false, false);
                if (!seen.contains(c) && matches(r, f)) {
                    all.add(r);
                }
            }
        }
        for (Protocol.Target t : targets) {
            TargetChoice c = new TargetChoice(t.ref, t.namespace, null, t.provider);
            Row r = row(t, c, false);
            if (!seen.contains(c) && matches(r, f)) {
                all.add(r);
            }
        }
        return all;
    }

    private Row rowFor(TargetChoice c) {
        if (c.ref().equals(TargetChoice.TARGETLESS)) {
            boolean exists = namespaces.stream().anyMatch(n -> n.name.equals(c.namespace()));
            return new Row(c, TargetChoice.TARGETLESS, exists, null, List.of(), null, true, !exists);
        }
        for (Protocol.Target t : targets) {
            if (t.ref.equals(c.ref()) && eq(t.namespace, c.namespace())) {
                return row(t, c, true);
            }
        }
        String kind = c.ref().contains("/") ? c.ref().substring(0, c.ref().indexOf('/')) : c.ref();
        return new Row(c, kind, false, null, List.of(), null, true, true);
    }

    private static Row row(Protocol.Target t, TargetChoice c, boolean recent) {
        return new Row(c, t.kind, t.ready, t.status, t.containers == null ? List.of() : t.containers, t.description, recent, false);
    }

    private static boolean matches(Row r, Filter f) {
        if (f.namespace() != null && !f.namespace().isEmpty() && !eq(f.namespace(), r.choice().namespace())) {
            return false;
        }
        if (f.kinds() != null && !f.kinds().isEmpty() && !f.kinds().contains(r.kind())) {
            return false;
        }
        if (f.text() == null || f.text().isBlank()) {
            return true;
        }
        String q = f.text().toLowerCase(Locale.ROOT).trim();
        return r.choice().ref().toLowerCase(Locale.ROOT).contains(q)
                || (r.description() != null && r.description().toLowerCase(Locale.ROOT).contains(q));
    }

    private static boolean eq(String a, String b) {
        return (a == null || a.isEmpty()) ? (b == null || b.isEmpty()) : a.equals(b);
    }
}
