package dev.remocal.jetbrains.core.launch;

/** The kinds of run configuration the patcher knows; docs/jetbrains.md says what each gets. */
public enum LaunchKind {
    /** A JVM the IDE starts itself (Application, JUnit, Spring Boot run configurations). */
    JAVA,
    /** Gradle tasks: the session reaches only the processes of the tasks asked for. */
    GRADLE,
    /** Maven goals: Maven itself stays local, the JVMs and programs it forks join. */
    MAVEN,
    /** A Go program (GoLand: the built binary, or dlv). */
    GO,
    /** A Python interpreter (PyCharm). */
    PYTHON,
    /** Node.js (WebStorm, IntelliJ IDEA Ultimate). */
    NODE,
    /** Any other command line. */
    PLAIN
}
