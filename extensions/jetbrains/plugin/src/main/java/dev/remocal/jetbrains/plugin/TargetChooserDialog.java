package dev.remocal.jetbrains.plugin;

import com.intellij.openapi.application.ApplicationManager;
import com.intellij.openapi.application.ModalityState;
import com.intellij.openapi.project.Project;
import com.intellij.openapi.ui.ComboBox;
import com.intellij.openapi.ui.DialogWrapper;
import com.intellij.ui.ColoredListCellRenderer;
import com.intellij.ui.DocumentAdapter;
import com.intellij.ui.SimpleTextAttributes;
import com.intellij.ui.components.JBList;
import com.intellij.ui.components.JBScrollPane;
import com.intellij.ui.components.JBTextField;
import dev.remocal.jetbrains.core.daemon.DaemonClient;
import dev.remocal.jetbrains.core.targets.TargetChoice;
import dev.remocal.jetbrains.core.targets.TargetModel;

import javax.swing.BorderFactory;
import javax.swing.JComponent;
import javax.swing.JList;
import javax.swing.JPanel;
import javax.swing.event.DocumentEvent;
import java.awt.BorderLayout;
import java.util.Set;

/** Namespace combo, search field, and the core's TargetModel rows; OK remembers the choice. */
final class TargetChooserDialog extends DialogWrapper {
    private final Project project;
    private final ComboBox<String> namespace = new ComboBox<>();
    private final JBTextField search = new JBTextField();
    private final JBList<TargetModel.Row> list = new JBList<>();
    private TargetModel model;

    TargetChooserDialog(Project project) {
        super(project);
        this.project = project;
        setTitle("remocal: Choose Target");
        list.setCellRenderer(new ColoredListCellRenderer<>() {
            @Override
            protected void customizeCellRenderer(JList<? extends TargetModel.Row> l, TargetModel.Row r, int i, boolean sel, boolean focus) {
                append(r.choice().display(), r.ready() ? SimpleTextAttributes.REGULAR_ATTRIBUTES : SimpleTextAttributes.GRAYED_ATTRIBUTES);
                append("  " + r.detail(), SimpleTextAttributes.GRAYED_SMALL_ATTRIBUTES);
                if (r.recent()) {
                    append("  recent", SimpleTextAttributes.GRAY_ITALIC_ATTRIBUTES);
                }
            }
        });
        namespace.addActionListener(e -> refilter());
        search.getDocument().addDocumentListener(new DocumentAdapter() {
            @Override
            protected void textChanged(DocumentEvent e) {
                refilter();
            }
        });
        init();
        load();
    }

    private void load() {
        list.setEmptyText("Loading targets from the remocal daemon…");
        ApplicationManager.getApplication().executeOnPooledThread(() -> {
            try {
                DaemonClient c = RemocalProject.get(project).client();
                TargetModel m = new TargetModel(DaemonClient.await(c.namespaces()), DaemonClient.await(c.targets(new dev.remocal.jetbrains.core.protocol.Protocol.TargetsParams())));
                ApplicationManager.getApplication().invokeLater(() -> {
                    model = m;
                    namespace.removeAllItems();
                    namespace.addItem("all namespaces");
                    m.namespaces().forEach(namespace::addItem);
                    refilter();
                }, ModalityState.any());
            } catch (Exception e) {
                ApplicationManager.getApplication().invokeLater(() -> list.setEmptyText(e.getMessage()), ModalityState.any());
            }
        });
    }

    private void refilter() {
        if (model == null) {
            return;
        }
        String ns = namespace.getSelectedIndex() <= 0 ? null : (String) namespace.getSelectedItem();
        var rows = model.rows(new TargetModel.Filter(ns, Set.of(), search.getText()), RemocalProject.get(project).recent());
        list.setListData(rows.toArray(TargetModel.Row[]::new));
        list.setEmptyText("No targets match; is the pod running, and does your kubeconfig reach the cluster?");
    }

    @Override
    protected JComponent createCenterPanel() {
        JPanel top = new JPanel(new BorderLayout(8, 0));
        top.add(namespace, BorderLayout.WEST);
        top.add(search, BorderLayout.CENTER);
        JPanel p = new JPanel(new BorderLayout(0, 8));
        p.add(top, BorderLayout.NORTH);
        JBScrollPane scroll = new JBScrollPane(list);
        scroll.setBorder(BorderFactory.createEmptyBorder());
        p.add(scroll, BorderLayout.CENTER);
        p.setPreferredSize(new java.awt.Dimension(640, 420));
        return p;
    }

    @Override
    protected void doOKAction() {
        TargetModel.Row r = list.getSelectedValue();
        if (r == null) {
            return;
        }
        TargetChoice c = r.choice();
        if (r.containers().size() > 1) {
            String picked = com.intellij.openapi.ui.Messages.showEditableChooseDialog("Container of " + c.ref() + ":", "remocal",
                    null, r.containers().toArray(String[]::new), r.containers().get(0), null);
            if (picked == null) {
                return;
            }
            c = new TargetChoice(c.ref(), c.namespace(), picked.equals(r.containers().get(0)) ? null : picked, c.provider());
        }
        RemocalProject.get(project).setTarget(c);
        super.doOKAction();
    }
}
