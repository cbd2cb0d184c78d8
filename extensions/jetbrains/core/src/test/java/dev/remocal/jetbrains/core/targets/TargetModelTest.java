package dev.remocal.jetbrains.core.targets;

import dev.remocal.jetbrains.core.Vectors;
import dev.remocal.jetbrains.core.protocol.Protocol;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TargetModelTest {
    final TargetModel model = new TargetModel(Vectors.read("remocal.namespaces.result", Protocol.NamespacesResult.class),
            Vectors.read("remocal.targets.result", Protocol.TargetsResult.class));

    static List<String> refs(List<TargetModel.Row> rows) {
        return rows.stream().map(r -> r.choice().display()).toList();
    }

    @Test
    void listsRecentThenTargetlessThenTargets() {
        RecentTargets recent = new RecentTargets();
        recent.add(new TargetChoice("deployment/gone", "shop", null, "kubernetes"));
        recent.add(new TargetChoice("deployment/inventory", "shop", "migrate", "kubernetes"));
        List<TargetModel.Row> rows = model.rows(TargetModel.Filter.ALL, recent);
        assertEquals(List.of("deployment/inventory/container/migrate (shop)", "deployment/gone (shop)", "targetless (default)",
                "pid/4242", "deployment/inventory (shop)"), refs(rows));
        assertTrue(rows.get(0).recent() && !rows.get(0).gone());
        assertEquals("2/3 ready · remocal.local/examples/inventory:dev, istio/proxyv2:1.24", rows.get(0).detail());
        assertTrue(rows.get(1).gone());
        assertEquals("no longer found", rows.get(1).detail());
        assertEquals(List.of("inventory", "migrate"), rows.get(4).containers());
    }

    @Test
    void filtersByNamespaceKindAndText() {
        RecentTargets none = new RecentTargets();
        assertEquals(List.of("pid/4242"), refs(model.rows(new TargetModel.Filter("local", Set.of(), null), none)));
        assertEquals(List.of("deployment/inventory (shop)"), refs(model.rows(new TargetModel.Filter(null, Set.of("deployment"), null), none)));
        assertEquals(List.of("pid/4242"), refs(model.rows(new TargetModel.Filter(null, Set.of(), "LISTEN :8080"), none)));
        assertEquals(List.of("deployment", "pid"), model.kinds());
    }

    @Test
    void recentTargetsSurviveEncoding() {
        RecentTargets r = new RecentTargets();
        for (int i = 0; i < RecentTargets.MAX + 3; i++) {
            r.add(new TargetChoice("pid/" + i, null, null, "local"));
        }
        r.add(new TargetChoice("pid/5", null, null, "local"));
        RecentTargets back = RecentTargets.decode(r.encode());
        assertEquals(r.items(), back.items());
        assertEquals("pid/5", back.items().get(0).ref());
        assertEquals(RecentTargets.MAX, back.items().size());
        assertFalse(RecentTargets.decode(List.of("garbage", "")).items().iterator().hasNext());
    }

    @Test
    void notReadySaysWhy() {
        Protocol.Target t = Vectors.read("remocal.targets.result", Protocol.TargetsResult.class).targets.get(1);
        t.ready = false;
        t.status = "CrashLoopBackOff";
        Protocol.TargetsResult ts = new Protocol.TargetsResult();
        ts.targets = List.of(t);
        TargetModel m = new TargetModel(new Protocol.NamespacesResult(), ts);
        assertTrue(m.rows(TargetModel.Filter.ALL, new RecentTargets()).get(0).detail().startsWith("not ready: CrashLoopBackOff"));
    }
}
