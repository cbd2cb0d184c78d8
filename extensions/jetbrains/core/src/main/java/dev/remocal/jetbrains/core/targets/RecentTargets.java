package dev.remocal.jetbrains.core.targets;

import java.util.ArrayList;
import java.util.List;

/**
 * The targets picked last, newest first, at most {@link #MAX}. The glue persists
 * {@link #encode()} (one string per choice) in the project's state.
 */
public final class RecentTargets {
    public static final int MAX = 8;

    private final List<TargetChoice> items = new ArrayList<>();

    public synchronized void add(TargetChoice c) {
        items.remove(c);
        items.add(0, c);
        while (items.size() > MAX) {
            items.remove(items.size() - 1);
        }
    }

    public synchronized List<TargetChoice> items() {
        return List.copyOf(items);
    }

    public synchronized List<String> encode() {
        return items.stream().map(TargetChoice::encode).toList();
    }

    /** Decodes what encode() wrote; entries it cannot read are dropped. */
    public static RecentTargets decode(List<String> lines) {
        RecentTargets r = new RecentTargets();
        for (String s : lines) {
            TargetChoice.decode(s).ifPresent(c -> {
                if (r.items.size() < MAX && !r.items.contains(c)) {
                    r.items.add(c);
                }
            });
        }
        return r;
    }
}
