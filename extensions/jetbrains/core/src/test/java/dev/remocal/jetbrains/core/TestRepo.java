package dev.remocal.jetbrains.core;

import java.nio.file.Files;
import java.nio.file.Path;

/** Where the repository is: -Dremocal.repo, else the nearest directory above with go.mod. */
public final class TestRepo {
    private TestRepo() {}

    public static Path root() {
        String prop = System.getProperty("remocal.repo");
        if (prop != null && !prop.isEmpty()) {
            return Path.of(prop);
        }
        for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
            if (Files.isRegularFile(p.resolve("go.mod")) && Files.isDirectory(p.resolve("protocol/testdata/daemon"))) {
                return p;
            }
        }
        throw new IllegalStateException("cannot find the remocal repository above " + Path.of("").toAbsolutePath()
                + "; run the tests with -Dremocal.repo=/path/to/remocal (make jetbrains-core-test does)");
    }
}
