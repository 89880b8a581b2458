<?xml version='1.0' encoding='UTF-8'?>
<!--
  A small stylesheet that renders a XEP document (XSF xep.dtd vocabulary) as one readable HTML
  page: numbered headings, a table of contents, examples in <pre> with their captions,
  tables, footnotes, requirement anchors and a list of the links the document cites.

    mkdir -p target/xep && xsltproc xep/render.xsl xep/presence-sync.xml > target/xep/presence-sync.html

  It is not the XSF's xep.xsl: it needs no other file and no network access.
-->
<xsl:stylesheet version='1.0' xmlns:xsl='http://www.w3.org/1999/XSL/Transform'>
  <xsl:output method='html' encoding='UTF-8' indent='no'
              doctype-system='about:legacy-compat'/>

  <xsl:key name='link-by-url' match='link' use='@url'/>

  <xsl:template match='/xep'>
    <html lang='en'>
      <head>
        <meta charset='UTF-8'/>
        <title>XEP-<xsl:value-of select='header/number'/>: <xsl:value-of select='header/title'/></title>
        <style>
          body { font-family: sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; line-height: 1.45; color: #222; }
          h1 { font-size: 1.8em; } h2 { font-size: 1.4em; margin-top: 2em; border-bottom: 1px solid #ccc; }
          h3 { font-size: 1.15em; margin-top: 1.5em; } h4, h5 { font-size: 1em; }
          pre { background: #f6f6f6; border: 1px solid #ddd; padding: 0.6em; overflow-x: auto; font-size: 0.85em; white-space: pre-wrap; word-break: break-all; }
          table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
          th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; vertical-align: top; text-align: left; }
          caption, .caption { font-weight: bold; text-align: left; margin: 0.8em 0 0.3em; }
          .req { color: #8a2be2; white-space: nowrap; }
          .meta th { background: #f0f0f0; } .legal { font-size: 0.8em; color: #555; }
          .toc ul { list-style: none; padding-left: 1.2em; } .abstract { font-style: italic; }
          sup.fn { font-size: 0.75em; } .footnotes { font-size: 0.85em; }
        </style>
      </head>
      <body>
        <h1>XEP-<xsl:value-of select='header/number'/>: <xsl:value-of select='header/title'/></h1>
        <p class='abstract'><xsl:value-of select='header/abstract'/></p>
        <xsl:apply-templates select='header'/>
        <div class='toc'>
          <h2>Table of Contents</h2>
          <ul><xsl:apply-templates select='section1' mode='toc'/></ul>
        </div>
        <xsl:apply-templates select='section1'/>
        <xsl:if test='//note'>
          <h2>Notes</h2>
          <ol class='footnotes'>
            <xsl:for-each select='//note'>
              <li id='fn-{position()}'><xsl:apply-templates/></li>
            </xsl:for-each>
          </ol>
        </xsl:if>
        <h2>Links</h2>
        <ul>
          <xsl:for-each select="//link[not(starts-with(@url, '#'))][generate-id() = generate-id(key('link-by-url', @url)[1])]">
            <xsl:sort select='@url'/>
            <li><a href='{@url}'><xsl:value-of select='@url'/></a></li>
          </xsl:for-each>
        </ul>
        <h2>Legal Notice</h2>
        <div class='legal'>
          <xsl:for-each select='header/legal/*'>
            <p><xsl:apply-templates/></p>
          </xsl:for-each>
        </div>
      </body>
    </html>
  </xsl:template>

  <xsl:template match='header'>
    <table class='meta'>
      <tr><th>Number</th><td><xsl:value-of select='number'/></td></tr>
      <tr><th>Status</th><td><xsl:value-of select='status'/></td></tr>
      <tr><th>Type</th><td><xsl:value-of select='type'/></td></tr>
      <tr><th>SIG</th><td><xsl:value-of select='sig'/></td></tr>
      <tr><th>Approver</th><td><xsl:value-of select='approver'/></td></tr>
      <tr><th>Dependencies</th><td><xsl:for-each select='dependencies/spec'><xsl:value-of select='.'/><xsl:if test='position() != last()'>, </xsl:if></xsl:for-each></td></tr>
      <tr><th>Supersedes</th><td><xsl:value-of select='supersedes'/></td></tr>
      <tr><th>Superseded by</th><td><xsl:value-of select='supersededby'/></td></tr>
      <tr><th>Short name</th><td><xsl:value-of select='shortname'/></td></tr>
      <xsl:for-each select='author'>
        <tr><th>Author</th><td><xsl:value-of select='firstname'/><xsl:text> </xsl:text><xsl:value-of select='surname'/>
          <xsl:if test='email'> &lt;<xsl:value-of select='email'/>&gt;</xsl:if>
          <xsl:if test='jid'>, JID <xsl:value-of select='jid'/></xsl:if></td></tr>
      </xsl:for-each>
    </table>
    <table class='meta'>
      <caption>Revision history</caption>
      <tr><th>Version</th><th>Date</th><th>Initials</th><th>Remark</th></tr>
      <xsl:for-each select='revision'>
        <tr><td><xsl:value-of select='version'/></td><td><xsl:value-of select='date'/></td>
            <td><xsl:value-of select='initials'/></td><td><xsl:apply-templates select='remark/node()'/></td></tr>
      </xsl:for-each>
    </table>
  </xsl:template>

  <!-- Section numbers, shared by headings and the table of contents. -->
  <xsl:template name='number'>
    <xsl:number level='multiple' count='section1|section2|section3|section4' format='1.1'/>
  </xsl:template>

  <xsl:template match='section1|section2|section3|section4' mode='toc'>
    <li>
      <a href='#{@anchor}'><xsl:call-template name='number'/>. <xsl:value-of select='@topic'/></a>
      <xsl:if test='section2|section3'>
        <ul><xsl:apply-templates select='section2|section3' mode='toc'/></ul>
      </xsl:if>
    </li>
  </xsl:template>

  <xsl:template match='section1'>
    <h2 id='{@anchor}'><xsl:call-template name='number'/>. <xsl:value-of select='@topic'/></h2>
    <xsl:apply-templates/>
  </xsl:template>
  <xsl:template match='section2'>
    <h3 id='{@anchor}'><xsl:call-template name='number'/>. <xsl:value-of select='@topic'/></h3>
    <xsl:apply-templates/>
  </xsl:template>
  <xsl:template match='section3'>
    <h4 id='{@anchor}'><xsl:call-template name='number'/>. <xsl:value-of select='@topic'/></h4>
    <xsl:apply-templates/>
  </xsl:template>
  <xsl:template match='section4'>
    <h5 id='{@anchor}'><xsl:call-template name='number'/>. <xsl:value-of select='@topic'/></h5>
    <xsl:apply-templates/>
  </xsl:template>

  <xsl:template match='p'><p><xsl:apply-templates/></p></xsl:template>
  <xsl:template match='div'><div><xsl:apply-templates/></div></xsl:template>
  <xsl:template match='ul'><ul><xsl:apply-templates/></ul></xsl:template>
  <xsl:template match='ol'><ol><xsl:apply-templates/></ol></xsl:template>
  <xsl:template match='li'><li><xsl:apply-templates/></li></xsl:template>
  <xsl:template match='em'><em><xsl:apply-templates/></em></xsl:template>
  <xsl:template match='tt'><code><xsl:apply-templates/></code></xsl:template>
  <xsl:template match='cite|dfn'><cite><xsl:apply-templates/></cite></xsl:template>
  <xsl:template match='br'><br/></xsl:template>
  <xsl:template match="span[@class='super']"><sup><xsl:apply-templates/></sup></xsl:template>
  <xsl:template match="span[@class='sub']"><sub><xsl:apply-templates/></sub></xsl:template>
  <xsl:template match='span'><span><xsl:apply-templates/></span></xsl:template>

  <xsl:template match='link'>
    <a href='{@url}'><xsl:apply-templates/></a>
  </xsl:template>

  <!-- Requirement identifiers become anchors: <strong>[PS-7]</strong> gets id 'PS-7'. -->
  <xsl:template match='strong'>
    <xsl:choose>
      <xsl:when test="starts-with(., '[PS-')">
        <strong class='req' id="{substring-before(substring-after(., '['), ']')}"><xsl:value-of select='.'/></strong>
      </xsl:when>
      <xsl:otherwise><strong><xsl:apply-templates/></strong></xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <xsl:template match='note'>
    <xsl:variable name='n' select='count(preceding::note) + 1'/>
    <sup class='fn'><a href='#fn-{$n}'>[<xsl:value-of select='$n'/>]</a></sup>
  </xsl:template>

  <xsl:template match='example'>
    <p class='caption'>Example <xsl:number level='any' count='example'/>. <xsl:value-of select='@caption'/></p>
    <pre><xsl:value-of select='.'/></pre>
  </xsl:template>

  <xsl:template match='code'>
    <xsl:if test='@caption'><p class='caption'><xsl:value-of select='@caption'/></p></xsl:if>
    <pre><xsl:value-of select='.'/></pre>
  </xsl:template>

  <xsl:template match='table'>
    <table>
      <xsl:if test='@caption'>
        <caption>Table <xsl:number level='any' count='table[ancestor::section1]'/>. <xsl:value-of select='@caption'/></caption>
      </xsl:if>
      <xsl:apply-templates select='tr'/>
    </table>
  </xsl:template>
  <xsl:template match='tr'><tr><xsl:apply-templates/></tr></xsl:template>
  <xsl:template match='th'><th><xsl:apply-templates/></th></xsl:template>
  <xsl:template match='td'><td><xsl:apply-templates/></td></xsl:template>
  <!-- In the Requirements Index, the identifier links to its definition. -->
  <xsl:template match="table[@caption='Requirements']/tr/td[1]">
    <td><a href='#{.}'><xsl:value-of select='.'/></a></td>
  </xsl:template>
</xsl:stylesheet>
