package dev.remocal.jetbrains.plugin;

import com.intellij.openapi.project.Project;
import com.intellij.openapi.vfs.VirtualFile;
import com.jetbrains.jsonSchema.extension.JsonSchemaFileProvider;
import com.jetbrains.jsonSchema.extension.JsonSchemaProviderFactory;
import com.jetbrains.jsonSchema.extension.SchemaType;

import java.util.List;

/** Completion and validation in .remocal/config.json, from protocol/config/schema.json (copied into the jar at build). */
public final class ConfigSchemaProvider implements JsonSchemaProviderFactory {
    @Override
    public List<JsonSchemaFileProvider> getProviders(Project project) {
        return List.of(new JsonSchemaFileProvider() {
            @Override
            public boolean isAvailable(VirtualFile file) {
                VirtualFile dir = file.getParent();
                return file.getName().equals("config.json") && dir != null && dir.getName().equals(".remocal");
            }

            @Override
            public String getName() {
                return "remocal configuration";
            }

            @Override
            public VirtualFile getSchemaFile() {
                return JsonSchemaProviderFactory.getResourceFile(ConfigSchemaProvider.class, "/schemas/remocal-config.schema.json");
            }

            @Override
            public SchemaType getSchemaType() {
                return SchemaType.embeddedSchema;
            }
        });
    }
}
