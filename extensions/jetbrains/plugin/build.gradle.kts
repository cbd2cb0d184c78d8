// IntelliJ Platform Gradle Plugin 2.x. Not built in this repository's CI (the
// JetBrains repositories are unreachable there); see CONTRIBUTING.md for the
// command on a machine that reaches them.
plugins {
    id("java")
    id("org.jetbrains.intellij.platform") version "2.2.1"
}

group = "dev.remocal"
version = providers.gradleProperty("pluginVersion").get()

repositories {
    mavenCentral()
    intellijPlatform {
        defaultRepositories()
    }
}

java {
    toolchain {
        languageVersion = JavaLanguageVersion.of(17)
    }
}

sourceSets {
    main {
        // The core has no IntelliJ classes and is tested by make jetbrains-core-test;
        // the plugin ships it in its own jar. gson comes from the platform.
        java.srcDir("../core/src/main/java")
    }
}

dependencies {
    intellijPlatform {
        // Ultimate: Java, Gradle, Maven, JavaScript/Node.js and JSON are bundled;
        // Go and Python come from the Marketplace, at versions compatible with it.
        intellijIdeaUltimate(providers.gradleProperty("platformVersion"))
        bundledPlugins("com.intellij.java", "com.intellij.gradle", "org.jetbrains.idea.maven", "JavaScript", "NodeJS")
        compatiblePlugins("org.jetbrains.plugins.go", "PythonCore")
        instrumentationTools()
    }
}

intellijPlatform {
    pluginConfiguration {
        ideaVersion {
            sinceBuild = "241"
            untilBuild = provider { null }
        }
    }
}

tasks {
    processResources {
        // The configuration's JSON Schema, as remocal verify-config --schema prints it.
        from("../../../protocol/config/schema.json") {
            into("schemas")
            rename { "remocal-config.schema.json" }
        }
    }
}
