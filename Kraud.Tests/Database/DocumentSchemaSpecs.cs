using Kraud.Api.Common;
using Kraud.Api.Configuration;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Mono.Cecil;
using Mono.Cecil.Cil;

namespace Kraud.Tests.Database;

/// <summary>
/// Nodes of a cluster start side by side against one database. Marten creates a document's table on first use with a
/// lock inside the process only, so two nodes touching a new document type at once can fail one write; Kraud therefore
/// applies its whole schema at start under Marten's advisory lock, and that covers only the documents configured
/// before start. These specs read the compiled code (every generic call on a Marten session) for the documents Kraud
/// stores and loads, so a document added without its registration fails here rather than once in a while in a cluster.
/// </summary>
public class DocumentSchemaSpecs
{
    private static readonly string[] SessionMethods =
        ["Load", "LoadAsync", "LoadManyAsync", "Query", "Store", "Insert", "Update", "Delete", "HardDelete", "DeleteWhere", "HardDeleteWhere"];

    private static IReadOnlyList<string> DocumentsUsedInCode()
    {
        var found = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var assembly in new[] { typeof(KraudSlice).Assembly, typeof(Kraud.Projections.Pods.PodView).Assembly })
        {
            using var module = ModuleDefinition.ReadModule(assembly.Location);
            var methods = module.GetTypes().SelectMany(t => t.Methods).Where(m => m.HasBody);
            foreach (var instruction in methods.SelectMany(m => m.Body.Instructions))
            {
                if (instruction.OpCode.Code is not (Code.Call or Code.Callvirt) || instruction.Operand is not GenericInstanceMethod call) continue;
                if (call.DeclaringType.Namespace is not { } ns || !ns.StartsWith("Marten", StringComparison.Ordinal)) continue;
                if (!SessionMethods.Contains(call.Name) || call.GenericArguments.Count != 1) continue;
                var document = call.GenericArguments[0];
                if (document.IsGenericParameter || document.Module.Assembly.Name.Name is not { } owner || !owner.StartsWith("Kraud", StringComparison.Ordinal)) continue;
                found.Add(document.FullName.Replace('/', '+'));
            }
        }

        return [.. found];
    }

    private static IReadOnlyList<string> DocumentsConfigured()
    {
        // The store as Kraud configures it, built without a connection: nothing is created, only the mappings are read.
        using var services = new ServiceCollection().AddLogging().AddSingleton<Microsoft.Extensions.Configuration.IConfiguration>(
                new Microsoft.Extensions.Configuration.ConfigurationBuilder().Build())
            .AddKraudMarten("Host=127.0.0.1;Database=unused").BuildServiceProvider();
        var store = services.GetRequiredService<IDocumentStore>();
        return store.Options.AllKnownDocumentTypes().Select(m => m.DocumentType.FullName!).Order(StringComparer.Ordinal).ToList();
    }

    [Fact]
    public void the_code_is_read_for_the_documents_it_stores()
    {
        // A reader that found nothing would pass the next spec on anything.
        var used = DocumentsUsedInCode();
        Assert.Contains(typeof(Kraud.Projections.Pods.PodView).FullName, used);
        Assert.Contains(typeof(Kraud.Api.Volumes.ExportGrant).FullName, used);
    }

    [Fact]
    public void every_document_kraud_stores_or_loads_is_configured_so_its_table_is_made_at_start()
    {
        Assert.Empty(DocumentsUsedInCode().Except(DocumentsConfigured()));
    }
}
