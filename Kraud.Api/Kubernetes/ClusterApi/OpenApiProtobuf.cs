using System.Text;
using System.Text.Json.Nodes;

namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>
/// The OpenAPI v2 document in the protocol buffer encoding older kubectl (1.20, Debian's kubernetes-client) asks for: it
/// sends Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf only, and without the document it refuses to
/// apply unless --validate=false. The messages are gnostic's openapi.v2 (OpenAPIv2.proto); kubectl reads the document's
/// definitions (schemas with their group-version-kind) for validation and explain, so those are encoded fully, paths not.
/// Encoded by hand (a few field numbers and the wire format) rather than with a protobuf runtime and generated code.
/// </summary>
public static class OpenApiProtobuf
{
    // What kube-apiserver answers with (clients ask with "@v1.0", which Go's mime parser refuses in a response).
    public const string MediaType = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

    // Field numbers of gnostic's openapi.v2 messages.
    private const int DocumentSwagger = 1, DocumentInfo = 2, DocumentPaths = 8, DocumentDefinitions = 9;
    private const int InfoTitle = 1, InfoVersion = 2;
    private const int NamedName = 1, NamedValue = 2;
    private const int AnyYaml = 2;
    private const int SchemaRef = 1, SchemaFormat = 2, SchemaTitle = 3, SchemaDescription = 4, SchemaUniqueItems = 16, SchemaRequired = 19,
        SchemaAdditionalProperties = 21, SchemaType = 22, SchemaItems = 23, SchemaAllOf = 24, SchemaProperties = 25, SchemaVendorExtension = 31;

    public static byte[] Encode(JsonObject document)
    {
        var w = new Writer();
        w.String(DocumentSwagger, document["swagger"]?.GetValue<string>() ?? "2.0");
        if (document["info"] is JsonObject info)
            w.Message(DocumentInfo, i =>
            {
                i.String(InfoTitle, info["title"]?.GetValue<string>());
                i.String(InfoVersion, info["version"]?.GetValue<string>());
            });
        w.Message(DocumentPaths, _ => { });
        if (document["definitions"] is JsonObject definitions)
            w.Message(DocumentDefinitions, d => NamedSchemas(d, 1, definitions));
        return w.ToArray();
    }

    private static void NamedSchemas(Writer w, int field, JsonObject schemas)
    {
        foreach (var (name, schema) in schemas)
            w.Message(field, n =>
            {
                n.String(NamedName, name);
                n.Message(NamedValue, s => Schema(s, (JsonObject)schema!));
            });
    }

    private static void Schema(Writer w, JsonObject schema)
    {
        foreach (var (key, value) in schema)
        {
            switch (key)
            {
                case "$ref": w.String(SchemaRef, value!.GetValue<string>()); break;
                case "format": w.String(SchemaFormat, value!.GetValue<string>()); break;
                case "title": w.String(SchemaTitle, value!.GetValue<string>()); break;
                case "description": w.String(SchemaDescription, value!.GetValue<string>()); break;
                case "uniqueItems": w.Bool(SchemaUniqueItems, value!.GetValue<bool>()); break;
                case "required":
                    foreach (var r in (JsonArray)value!) w.String(SchemaRequired, r!.GetValue<string>());
                    break;
                case "additionalProperties" when value is JsonObject additional:
                    w.Message(SchemaAdditionalProperties, a => a.Message(1, s => Schema(s, additional)));
                    break;
                case "type": w.Message(SchemaType, t => t.String(1, value!.GetValue<string>())); break;
                case "items" when value is JsonObject items: w.Message(SchemaItems, i => i.Message(1, s => Schema(s, items))); break;
                case "allOf":
                    foreach (var part in (JsonArray)value!) w.Message(SchemaAllOf, s => Schema(s, (JsonObject)part!));
                    break;
                case "properties": w.Message(SchemaProperties, p => NamedSchemas(p, 1, (JsonObject)value!)); break;
                case var x when x.StartsWith("x-", StringComparison.Ordinal):
                    // A vendor extension's value is YAML text; JSON is YAML.
                    w.Message(SchemaVendorExtension, n =>
                    {
                        n.String(NamedName, key);
                        n.Message(NamedValue, a => a.String(AnyYaml, value!.ToJsonString()));
                    });
                    break;
            }
        }
    }

    /// <summary>The protocol buffer wire format, as far as these messages need it (varints, length-delimited fields).</summary>
    private sealed class Writer
    {
        private readonly MemoryStream buffer = new();

        public byte[] ToArray() => buffer.ToArray();

        private void Varint(ulong value)
        {
            while (value >= 0x80)
            {
                buffer.WriteByte((byte)(value | 0x80));
                value >>= 7;
            }
            buffer.WriteByte((byte)value);
        }

        private void Tag(int field, int wireType) => Varint((ulong)((field << 3) | wireType));

        private void Bytes(int field, ReadOnlySpan<byte> bytes)
        {
            Tag(field, 2);
            Varint((ulong)bytes.Length);
            buffer.Write(bytes);
        }

        public void String(int field, string? value)
        {
            if (string.IsNullOrEmpty(value)) return;
            Bytes(field, Encoding.UTF8.GetBytes(value));
        }

        public void Bool(int field, bool value)
        {
            if (!value) return;
            Tag(field, 0);
            Varint(1);
        }

        public void Message(int field, Action<Writer> body)
        {
            var inner = new Writer();
            body(inner);
            Bytes(field, inner.buffer.GetBuffer().AsSpan(0, (int)inner.buffer.Length));
        }
    }
}
